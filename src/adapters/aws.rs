//! Shared AWS SDK plumbing for the RDS and CloudWatch adapters: loading the SDK config (default
//! credential chain and region, `AWS_ENDPOINT_URL[_<SERVICE>]` overrides, standard retries,
//! timeouts) and mapping SDK errors to the typed [`PortError`].

use crate::ports::{ErrorKind, PortError};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::time::Duration;

/// Per-attempt timeout: a stalled call is abandoned and retried by the SDK's standard retries.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-operation timeout, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The SDK config from the environment: credentials and region from the default chain,
/// endpoints from AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_RDS / AWS_ENDPOINT_URL_CLOUDWATCH.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

/// Error codes that mean "throttled" across AWS query and JSON protocols.
const THROTTLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
];

/// Map an SDK error to a [`PortError`], telling not-found, already-exists, throttled and
/// transient failures from fatal ones.
pub fn classify<E>(operation: &str, err: &SdkError<E, Response>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let kind = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorKind::Transient
        }
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or("");
            let status = ctx.raw().status().as_u16();
            if THROTTLE_CODES.contains(&code) || status == 429 {
                ErrorKind::Throttled
            } else if CAPACITY_CODES.contains(&code) {
                ErrorKind::NoCapacity
            } else if QUOTA_CODES.contains(&code) {
                ErrorKind::QuotaExceeded
            } else if code.contains("NotFound") {
                ErrorKind::NotFound
            } else if code.contains("AlreadyExists") {
                ErrorKind::AlreadyExists
            } else if status >= 500 || code == "InternalFailure" || code == "ServiceUnavailable" {
                ErrorKind::Transient
            } else {
                ErrorKind::Fatal
            }
        }
        _ => ErrorKind::Fatal,
    };
    let msg = describe(err);
    // Set-up problems are not worth retrying, and deserve a hint rather than the SDK's words.
    let lower = msg.to_ascii_lowercase();
    if lower.contains("missing signing region")
        || lower.contains("no region")
        || lower.contains("missing region")
    {
        return PortError::new(ErrorKind::Fatal, operation, NO_REGION);
    }
    if lower.contains("no credentials") || lower.contains("failed to load credentials") {
        return PortError::new(
            ErrorKind::Fatal,
            operation,
            format!("{NO_CREDENTIALS} ({msg})"),
        );
    }
    PortError::new(kind, operation, msg)
}

/// RDS's "not here, not now": another zone or class may have room.
const CAPACITY_CODES: [&str; 2] = [
    "InsufficientDBInstanceCapacity",
    "ProvisionedIopsNotAvailableInAZFault",
];
/// RDS's account quotas.
const QUOTA_CODES: [&str; 2] = ["InstanceQuotaExceeded", "StorageQuotaExceeded"];

const NO_REGION: &str = "no AWS region configured: set AWS_REGION (or a region in the AWS profile)";
const NO_CREDENTIALS: &str = "no AWS credentials found by the default chain: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance or task role";

/// How long the start-up check waits for the credential chain (IMDS may not answer).
const CREDENTIALS_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Check at start that the environment gives a region and credentials, so that a service
/// missing either stops at once with a hint instead of retrying every tick. Endpoint overrides
/// change neither: requests are still signed for a region with credentials.
pub async fn check_environment() -> Result<(), PortError> {
    use aws_sdk_rds::config::ProvideCredentials;
    let cfg = sdk_config().await;
    let op = "start-up check";
    if cfg.region().is_none() {
        return Err(PortError::new(ErrorKind::Fatal, op, NO_REGION));
    }
    let Some(provider) = cfg.credentials_provider() else {
        return Err(PortError::new(ErrorKind::Fatal, op, NO_CREDENTIALS));
    };
    match tokio::time::timeout(CREDENTIALS_CHECK_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(PortError::new(
            ErrorKind::Fatal,
            op,
            format!("{NO_CREDENTIALS} ({e})"),
        )),
        Err(_) => Err(PortError::new(
            ErrorKind::Fatal,
            op,
            format!(
                "{NO_CREDENTIALS} (the credential chain gave none within {}s)",
                CREDENTIALS_CHECK_TIMEOUT.as_secs()
            ),
        )),
    }
}

fn describe<E>(err: &SdkError<E, Response>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => format!("HTTP {}", ctx.raw().status().as_u16()),
            }
        }
        other => {
            // Walk the source chain: the top-level Display is only "dispatch failure" etc.
            let mut msg = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            msg
        }
    }
}
