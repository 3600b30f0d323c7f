//! gRPC services: thin adapters from `dfs.v1` messages to the namesystem and
//! the datanode registry. Conversions between wire and domain types live in
//! the adapter of the service that needs them.

mod client;
mod datanode;

pub(crate) use client::ClientService;
pub(crate) use datanode::DatanodeService;
