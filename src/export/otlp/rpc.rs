//! The few `google.rpc` messages OTLP errors carry: `Status` (the body of
//! an HTTP error, and gRPC's `grpc-status-details-bin`), `Any`, and
//! `RetryInfo` (how long a throttled client should wait).

use std::time::Duration;

use prost::Message;

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub(crate) code: i32,
    #[prost(string, tag = "2")]
    pub(crate) message: String,
    #[prost(message, repeated, tag = "3")]
    pub(crate) details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ProtoAny {
    #[prost(string, tag = "1")]
    pub(crate) type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub(crate) retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub(crate) seconds: i64,
    #[prost(int32, tag = "2")]
    pub(crate) nanos: i32,
}

const RETRY_INFO: &str = "type.googleapis.com/google.rpc.RetryInfo";

impl RpcStatus {
    /// The `RetryInfo` delay among the details, if any.
    pub(crate) fn retry_delay(&self) -> Option<Duration> {
        self.details
            .iter()
            .filter(|detail| detail.type_url == RETRY_INFO)
            .find_map(|detail| RetryInfo::decode(detail.value.as_slice()).ok())
            .and_then(|info| info.retry_delay)
            .map(|delay| {
                Duration::from_secs(u64::try_from(delay.seconds).unwrap_or(0))
                    + Duration::from_nanos(u64::try_from(delay.nanos).unwrap_or(0))
            })
    }

    /// A status carrying a `RetryInfo` of `delay` (for test collectors).
    #[cfg(test)]
    pub(crate) fn with_retry_delay(code: i32, message: &str, delay: Duration) -> Self {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: delay.as_secs() as i64,
                nanos: delay.subsec_nanos() as i32,
            }),
        };
        Self {
            code,
            message: message.to_string(),
            details: vec![ProtoAny {
                type_url: RETRY_INFO.to_string(),
                value: info.encode_to_vec(),
            }],
        }
    }
}

/// A short, printable excerpt of an error body: the `Status` message if it
/// decodes as one, else the text itself, cut at 512 characters.
pub(crate) fn error_message(body: &[u8], protobuf: bool) -> String {
    if protobuf {
        if let Ok(status) = RpcStatus::decode(body) {
            if !status.message.is_empty() {
                return excerpt(&status.message);
            }
        }
    }
    excerpt(&String::from_utf8_lossy(body))
}

/// `text` on one line, at most 512 characters.
pub(crate) fn excerpt(text: &str) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(513)
        .collect();
    if flat.chars().count() > 512 {
        let cut: String = flat.chars().take(512).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip_and_retry_delay() {
        let status = RpcStatus::with_retry_delay(8, "slow down", Duration::from_millis(1500));
        let decoded = RpcStatus::decode(status.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.retry_delay(), Some(Duration::from_millis(1500)));
        assert_eq!(error_message(&status.encode_to_vec(), true), "slow down");
        assert_eq!(error_message(b"plain\ntext", false), "plain text");
        assert_eq!(excerpt(&"x".repeat(600)).chars().count(), 513);
    }
}
