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
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}
