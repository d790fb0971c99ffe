//! The one error type of the runtime.

use std::fmt;

/// What went wrong, as a question callers can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A cache URL or builder setting is malformed.
    Config,
    /// The backend (Redis) failed or refused the operation.
    Backend,
    /// The backend did not answer within the operation timeout.
    Timeout,
    /// The circuit breaker is open: the backend is skipped for a cool-down.
    Unavailable,
    /// A value could not be encoded or decoded.
    Codec,
    /// A value is larger than the cache's maximum value size.
    TooLarge,
}

/// An error from the cache runtime.
///
/// Cached functions never see it: reads fail open. It surfaces from
/// [`Cache::from_url`](crate::Cache::from_url), the builder and the explicit
/// operations on [`Cache`](crate::Cache).
///
/// ```
/// # tokio_test_block(async {
/// let err = cache_runtime::Cache::from_url("memcached://localhost").await.unwrap_err();
/// assert_eq!(err.kind(), cache_runtime::ErrorKind::Config);
/// assert!(err.to_string().contains("memcached"));
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// `Result` with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True when the backend did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// True for a problem with a URL or setting (fix the configuration).
    pub fn is_config(&self) -> bool {
        self.kind == ErrorKind::Config
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

/// A key argument whose `Serialize` implementation fails (or that the key encoding cannot
/// represent) gives a [`ErrorKind::Codec`] error.
impl serde::ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(
            ErrorKind::Codec,
            format!("cannot encode a key argument: {msg}"),
        )
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
