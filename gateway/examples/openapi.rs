//! Prints the admin API's OpenAPI 3.1 document, as committed in docs/openapi.json:
//! `cargo run -p switchboard-gateway --example openapi > docs/openapi.json`.

fn main() {
    println!("{}", switchboard_gateway::http::openapi_json());
}
