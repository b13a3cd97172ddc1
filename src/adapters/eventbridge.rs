//! The `EventSink` port on Amazon EventBridge: `PutEvents` of one entry on a named bus, source
//! `elasticrds`, detail-type per event kind (`EventKind::detail_type`), detail the event's JSON
//! (`Notification::to_json`, with its `version`). A rejected entry (the call succeeds but
//! `FailedEntryCount` is not 0) is an error, retryable when EventBridge says throttled or
//! internal.

use super::aws::classify;
use crate::ports::{ErrorKind, EventSink, Notification, PortError};
use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

pub const SOURCE: &str = "elasticrds";

pub struct EventBridgeSink {
    client: Client,
    bus: String,
}

impl EventBridgeSink {
    /// A sink on `bus`, in `region` when given (else the SDK config's).
    pub fn new(sdk: &aws_config::SdkConfig, bus: &str, region: Option<&str>) -> Self {
        let mut b = aws_sdk_eventbridge::config::Builder::from(sdk);
        if let Some(r) = region {
            b = b.region(aws_sdk_eventbridge::config::Region::new(r.to_string()));
        }
        EventBridgeSink {
            client: Client::from_conf(b.build()),
            bus: bus.to_string(),
        }
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn deliver(&self, n: &Notification) -> Result<(), PortError> {
        let op = "PutEvents";
        let entry = PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(n.kind.detail_type())
            .detail(n.to_json().to_string())
            .event_bus_name(&self.bus)
            .time(aws_smithy_types::DateTime::from_millis(
                n.at.timestamp_millis(),
            ))
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| classify(op, &e))?;
        if out.failed_entry_count() == 0 {
            return Ok(());
        }
        let (code, message) = out
            .entries()
            .iter()
            .find_map(|e| e.error_code().map(|c| (c, e.error_message().unwrap_or(""))))
            .unwrap_or(("unknown", ""));
        let kind = match code {
            "ThrottlingException" => ErrorKind::Throttled,
            "InternalException" | "InternalFailure" => ErrorKind::Transient,
            _ => ErrorKind::Fatal,
        };
        Err(PortError::new(
            kind,
            op,
            format!("entry rejected: {code}: {message}"),
        ))
    }
}
