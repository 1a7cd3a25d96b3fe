//! Simulated Pinecone (REST API 2026-04 shapes, serverless dense indexes): a control plane
//! (`GET/POST /indexes`, `GET/DELETE /indexes/{name}`) and, per index, a data plane on its
//! own `host` (`/vectors/upsert`, `/query`, `/vectors/delete`, `/vectors/list`,
//! `/vectors/fetch`, `/describe_index_stats`) with exact search per namespace.
//!
//! Status codes and error bodies follow Pinecone: 401 without or with a wrong `Api-Key`,
//! 404 for an unknown index (and for deleting from an unknown namespace), 409 when
//! creating an existing index, 400 for a vector of the wrong dimension and the other
//! limits (1000 records and 2 MB per upsert, 40 KB of metadata per record). Control-plane
//! errors are `{"error":{"code","message"},"status"}`, data-plane errors gRPC-style
//! `{"code","message","details"}`. Metadata filters and sparse vectors are not
//! implemented (refused with a 400 that says so).
//!
//! Test knobs: a delay before a new index is ready, and fault injection
//! ([`PineconeSim::fail_next`]: the next N requests answer 429 or 503). Every request is
//! logged ([`PineconeSim::requests`]).
//!
//! Modules: `index` (the data and its operations, no I/O), `error` (the two error
//! shapes), `server` (HTTP).

mod error;
mod index;
mod server;

pub use error::ApiError;
pub use index::Metric;
pub use server::{PineconeSim, PineconeSimConfig, SimRequest, serve};
