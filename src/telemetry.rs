//! Logging and tracing: `tracing` to stderr (filter `DFA_LOG`, default warn)
//! and, for trace context, an OpenTelemetry layer. With
//! `telemetry.otlp_endpoint` set, spans are exported over OTLP/HTTP.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::settings::TelemetrySettings;

/// Flushes exported spans when dropped (at the end of `main`).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("dfa: flushing traces failed: {e}");
            }
        }
    }
}

/// Installs the global subscriber. `settings` is None when they could not be
/// loaded (the command reports that itself).
pub fn init(settings: Option<&TelemetrySettings>) -> Telemetry {
    let filter = EnvFilter::try_from_env("DFA_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    // Colours only on a terminal: log files and collectors get plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let provider = settings.and_then(provider);
    // dfa's own spans (request, consume, fetch, analyse, persist, publish).
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("dfa"))
            .with_filter(Targets::new().with_target("dfa", LevelFilter::INFO))
    });
    tracing_subscriber::registry().with(fmt).with(otel).init();
    Telemetry { provider }
}

fn provider(t: &TelemetrySettings) -> Option<SdkTracerProvider> {
    let resource = Resource::builder()
        .with_service_name(t.service_name.clone())
        .build();
    if !t.otlp_endpoint.is_empty() {
        match SpanExporter::builder()
            .with_http()
            .with_endpoint(t.otlp_endpoint.clone())
            .build()
        {
            Ok(exporter) => {
                return Some(
                    SdkTracerProvider::builder()
                        .with_batch_exporter(exporter)
                        .with_resource(resource)
                        .build(),
                )
            }
            Err(e) => eprintln!("dfa: OTLP exporter for {} disabled: {e}", t.otlp_endpoint),
        }
    }
    // No exporter: spans still get ids, so results carry our own traceparent.
    t.propagate_trace_context
        .then(|| SdkTracerProvider::builder().with_resource(resource).build())
}
