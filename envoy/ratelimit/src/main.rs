//! `keygate-ratelimit`: Envoy's rate-limit service (RLS v3 over gRPC), a third shell of the
//! keygate core: the decision is the core's GCRA (`keygate::ratelimit::decide`), the state
//! lives in Redis (any number of replicas share it) or, with `--memory`, in this process.
//!
//! Exit codes: 0 after a signal, 1 when it cannot listen, 2 for bad flags or a bad limits file.

mod args;
mod logger;
mod service;
mod store;

use args::{Backend, Command};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use keygate::ratelimit::DescriptorLimits;
use std::process::ExitCode;
use std::sync::Arc;
use store::{MemoryStore, RedisStore, Store};

/// Largest request accepted (a request is a few descriptors of a few entries).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

fn main() -> ExitCode {
    let args = match args::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(a)) => a,
        Ok(Command::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(msg) => return usage_error(&msg),
    };
    if let Err(msg) = logger::init() {
        return usage_error(&msg);
    }
    let limits = match &args.limits {
        None => DescriptorLimits::default(),
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    return usage_error(&format!("--limits {}: cannot read: {e}", path.display()))
                }
            };
            match DescriptorLimits::from_json(&text) {
                Ok(l) => l,
                Err(e) => return usage_error(&format!("--limits {}: {e}", path.display())),
            }
        }
    };
    let store = match &args.backend {
        Backend::Memory => Store::Memory(MemoryStore::default()),
        Backend::Redis(url) => match RedisStore::new(url) {
            Ok(r) => Store::Redis(Box::new(r)),
            Err(e) => return usage_error(&format!("--redis: {e}")),
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keygate-ratelimit: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(args.listen, store, limits))
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("keygate-ratelimit: {msg}\nRun `keygate-ratelimit --help` for the flags.");
    ExitCode::from(2)
}

async fn serve(listen: std::net::SocketAddr, store: Store, limits: DescriptorLimits) -> ExitCode {
    let incoming = match tonic::transport::server::TcpIncoming::bind(listen) {
        Ok(i) => i.with_nodelay(Some(true)),
        Err(e) => {
            eprintln!("keygate-ratelimit: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(
        "serving RLS v3 on {listen}; state in {}; {} limits in {} domains from --limits",
        store.describe(),
        limits.len(),
        limits.domains()
    );
    let rls = service::Rls::new(Arc::new(store), Arc::new(limits));
    let svc = RateLimitServiceServer::new(rls).max_decoding_message_size(MAX_REQUEST_BYTES);
    let result = tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(incoming, shutdown())
        .await;
    match result {
        Ok(()) => {
            log::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keygate-ratelimit: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
