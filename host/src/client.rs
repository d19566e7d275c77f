//! The terminal chat client (to be written).

/// Options of `roomcast client`.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {}

/// Runs the client until the user quits.
pub fn run(_args: ClientArgs) -> Result<(), String> {
    Err("the client is not written yet".into())
}
