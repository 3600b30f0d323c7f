//! Compiles the `.proto` files with protox (pure Rust), so that no protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/dfs/v1/common.proto",
        "proto/dfs/v1/client.proto",
        "proto/dfs/v1/datanode.proto",
        "proto/dfs/v1/data_transfer.proto",
        "proto/dfs/v1/quorum.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    write_rpc_methods(&fds)?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}

/// Writes `rpc_methods.rs`: every gRPC method's path, service and name, so
/// that per-method metrics label only methods that exist.
fn write_rpc_methods(
    fds: &prost_types::FileDescriptorSet,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut rows = String::new();
    for file in &fds.file {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                let (s, m) = (service.name(), method.name());
                rows.push_str(&format!(
                    "    (\"/{package}.{s}/{m}\", \"{s}\", \"{m}\"),\n"
                ));
            }
        }
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("rpc_methods.rs");
    std::fs::write(
        out,
        format!(
            "/// Every gRPC method: (path, service, method).\npub const RPC_METHODS: &[(&str, &str, &str)] = &[\n{rows}];\n"
        ),
    )?;
    Ok(())
}
