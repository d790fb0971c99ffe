//! What `#[cached_view(actix)]` expands into when the `actix` feature is off: stand-ins whose
//! only use is one clear error at the handler, naming the feature to turn on.

use std::convert::Infallible;
use std::future::Future;

/// Implemented for nothing: the bound that fails, with the message below.
#[diagnostic::on_unimplemented(
    message = "`#[cached_view(actix)]` needs the `actix` feature of cache-runtime",
    label = "this actix-web handler",
    note = "turn it on: `cache-runtime = {{ version = \"0.1\", features = [\"actix\"] }}`"
)]
pub trait ActixFeature {}

/// Stands in for the actix request extractor; never built.
pub struct ActixViewRequest(Infallible);

/// Stands in for `actix_web::HttpResponse`.
pub type ActixViewResponse = ();

/// Fails to compile at the handler: see [`ActixFeature`].
pub async fn cached_actix_view<S, R, F>(_spec: &S, req: ActixViewRequest, _fut: F)
where
    R: ActixFeature,
    F: Future<Output = R>,
{
    match req.0 {}
}
