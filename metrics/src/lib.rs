//! Prometheus metrics for every Meniscus binary.
//!
//! Names follow `meniscus_<subsystem>_<name>_<unit>` (`meniscus_wal_fsync_duration_seconds`,
//! `meniscus_ingest_received_events_total`). A metric is registered once, when the component
//! that owns it starts, and the handle it gets back is what the hot path updates: one relaxed
//! atomic add, no lock and no allocation. A labelled family hands out the handle of one label
//! set; looking it up again finds it by the borrowed label values, without building a key.
//!
//! [`Registry::render`] writes the Prometheus text format; [`Exposure`] decides whether series
//! that carry a tenant label are included, so tenant names stay off endpoints that strangers
//! can read.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt::Write as _;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::{Equivalent, HashMap};
use parking_lot::{Mutex, RwLock};

/// A counter: only goes up.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `amount`.
    pub fn add(&self, amount: u64) {
        if amount > 0 {
            self.0.fetch_add(amount, Ordering::Relaxed);
        }
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge: a value that goes up and down (never below zero).
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one, stopping at zero.
    pub fn dec(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| {
                Some(value.saturating_sub(1))
            });
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bucket bounds in seconds for latencies from a tenth of a millisecond to a minute.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug)]
struct HistogramState {
    bounds: &'static [f64],
    /// One count per bound, then the `+Inf` bucket; not cumulative (rendering adds up).
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum of observations in nanoseconds, so it stays an integer atomic.
    sum_nanos: AtomicU64,
}

/// A histogram of durations, rendered in seconds.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramState>);

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram(Arc::new(HistogramState {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }))
    }

    /// Records one duration.
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let state = &self.0;
        let index = state
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(state.bounds.len());
        state.buckets[index].fetch_add(1, Ordering::Relaxed);
        state.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        state.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

/// Anything a family can hold one of per label set: [`Counter`], [`Gauge`], [`Histogram`].
pub trait Metric: Clone + Send + Sync + 'static {
    /// The Prometheus type name.
    fn kind() -> &'static str;
    /// Writes the samples of one series; `labels` is `{a="b",...}` or empty.
    fn render(&self, name: &str, labels: &str, out: &mut String);
}

impl Metric for Counter {
    fn kind() -> &'static str {
        "counter"
    }
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let _ = writeln!(out, "{name}{labels} {}", self.get());
    }
}

impl Metric for Gauge {
    fn kind() -> &'static str {
        "gauge"
    }
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let _ = writeln!(out, "{name}{labels} {}", self.get());
    }
}

impl Metric for Histogram {
    fn kind() -> &'static str {
        "histogram"
    }
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let state = &self.0;
        // `labels` is `{a="b"}` or empty; `le` joins the set.
        let inner = labels.trim_start_matches('{').trim_end_matches('}');
        let separator = if inner.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (index, bound) in state.bounds.iter().enumerate() {
            cumulative += state.buckets[index].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{inner}{separator}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += state.buckets[state.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{inner}{separator}le=\"+Inf\"}} {cumulative}"
        );
        let sum = state.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{labels} {sum}");
        let _ = writeln!(out, "{name}_count{labels} {cumulative}");
    }
}

/// Label values as owned by a family.
type LabelKey = Box<[Box<str>]>;

/// Label values as a caller holds them: found in the map without building a [`LabelKey`].
/// Hashes exactly as a `LabelKey` does (a slice of strings).
#[derive(Hash)]
struct Borrowed<'a>(&'a [&'a str]);

impl Equivalent<LabelKey> for Borrowed<'_> {
    fn equivalent(&self, key: &LabelKey) -> bool {
        self.0.len() == key.len() && self.0.iter().zip(key.iter()).all(|(a, b)| *a == &**b)
    }
}

struct FamilyState<M> {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    /// Series carry a tenant id: left out of renders that must not name tenants.
    tenant_labelled: bool,
    new_metric: Box<dyn Fn() -> M + Send + Sync>,
    series: RwLock<HashMap<LabelKey, M>>,
}

/// A metric with labels: one `M` per combination of label values.
pub struct Family<M>(Arc<FamilyState<M>>);

impl<M> Clone for Family<M> {
    fn clone(&self) -> Self {
        Family(self.0.clone())
    }
}

impl<M: Metric> Family<M> {
    /// The metric of one label set (as many values as the family has label names), created on
    /// first use. Callers on hot paths keep the returned handle.
    pub fn with(&self, labels: &[&str]) -> M {
        let state = &self.0;
        debug_assert_eq!(
            labels.len(),
            state.label_names.len(),
            "label count of {}",
            state.name
        );
        let borrowed = Borrowed(labels);
        if let Some(metric) = state.series.read().get(&borrowed) {
            return metric.clone();
        }
        let mut series = state.series.write();
        if let Some(metric) = series.get(&borrowed) {
            return metric.clone();
        }
        let key: LabelKey = labels.iter().map(|label| Box::from(*label)).collect();
        let metric = (state.new_metric)();
        series.insert(key, metric.clone());
        metric
    }
}

impl Family<Counter> {
    /// Adds `amount` to the counter of one label set.
    pub fn add(&self, labels: &[&str], amount: u64) {
        if amount > 0 {
            self.with(labels).add(amount);
        }
    }

    /// Adds one to the counter of one label set.
    pub fn inc(&self, labels: &[&str]) {
        self.with(labels).inc();
    }

    /// The value of one label set (0 when it was never touched).
    pub fn get(&self, labels: &[&str]) -> u64 {
        self.0
            .series
            .read()
            .get(&Borrowed(labels))
            .map_or(0, Counter::get)
    }

    /// The sum over every label set.
    pub fn total(&self) -> u64 {
        self.0.series.read().values().map(Counter::get).sum()
    }
}

impl Family<Gauge> {
    /// Sets the gauge of one label set.
    pub fn set(&self, labels: &[&str], value: u64) {
        self.with(labels).set(value);
    }
}

/// Which series a render includes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Everything, tenant-labelled series included (an operator's view).
    Full,
    /// Only series without a tenant label: safe where anyone can read it.
    WithoutTenants,
}

trait Render: Send + Sync {
    fn name(&self) -> &'static str;
    fn render(&self, exposure: Exposure, out: &mut String);
}

impl<M: Metric> Render for FamilyState<M> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn render(&self, exposure: Exposure, out: &mut String) {
        if self.tenant_labelled && exposure == Exposure::WithoutTenants {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, M::kind());
        let series = self.series.read();
        let mut rendered: Vec<(String, &M)> = series
            .iter()
            .map(|(values, metric)| (label_text(self.label_names, values), metric))
            .collect();
        rendered.sort_by(|a, b| a.0.cmp(&b.0));
        for (labels, metric) in rendered {
            metric.render(self.name, &labels, out);
        }
    }
}

fn label_text(names: &[&str], values: &[Box<str>]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(name, value)| format!("{name}=\"{}\"", escape_label(value)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every metric of one process, in registration order.
#[derive(Clone, Default)]
pub struct Registry {
    families: Arc<Mutex<Vec<Arc<dyn Render>>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("families", &self.families.lock().len())
            .finish()
    }
}

/// The label name that marks a family as tenant-labelled.
pub const TENANT_LABEL: &str = "tenant";

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn family<M: Metric>(
        &self,
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
        new_metric: impl Fn() -> M + Send + Sync + 'static,
    ) -> Family<M> {
        debug_assert!(
            name.starts_with("meniscus_"),
            "metric {name} must start with meniscus_"
        );
        let mut families = self.families.lock();
        // Registering the same name twice would render it twice: a programming error.
        assert!(
            families.iter().all(|family| family.name() != name),
            "metric {name} registered twice"
        );
        let state = Arc::new(FamilyState {
            name,
            help,
            label_names,
            tenant_labelled: label_names.contains(&TENANT_LABEL),
            new_metric: Box::new(new_metric),
            series: RwLock::new(HashMap::new()),
        });
        families.push(state.clone());
        Family(state)
    }

    /// A counter family with these label names.
    pub fn counters(
        &self,
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
    ) -> Family<Counter> {
        self.family(name, help, label_names, Counter::default)
    }

    /// A counter without labels.
    pub fn counter(&self, name: &'static str, help: &'static str) -> Counter {
        self.counters(name, help, &[]).with(&[])
    }

    /// A gauge family with these label names.
    pub fn gauges(
        &self,
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
    ) -> Family<Gauge> {
        self.family(name, help, label_names, Gauge::default)
    }

    /// A gauge without labels.
    pub fn gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        self.gauges(name, help, &[]).with(&[])
    }

    /// A histogram family of durations with these bucket bounds (seconds).
    pub fn histograms(
        &self,
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Family<Histogram> {
        self.family(name, help, label_names, move || Histogram::new(bounds))
    }

    /// A histogram without labels.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        bounds: &'static [f64],
    ) -> Histogram {
        self.histograms(name, help, &[], bounds).with(&[])
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self, exposure: Exposure) -> String {
        let families: Vec<Arc<dyn Render>> = self.families.lock().clone();
        let mut out = String::new();
        for family in families {
            family.render(exposure, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_escaped_labels() {
        let registry = Registry::new();
        let failures = registry.counters(
            "meniscus_test_failures_total",
            "Failures.",
            &["transport", "reason"],
        );
        failures.add(&["tcp", "invalid_token"], 3);
        let fsyncs = registry.counter("meniscus_test_fsyncs_total", "Fsyncs.");
        fsyncs.inc();
        let connections =
            registry.gauges("meniscus_test_open_connections", "Open.", &["transport"]);
        connections.with(&["a\"b"]).inc();
        let text = registry.render(Exposure::Full);
        assert!(
            text.contains(
                "meniscus_test_failures_total{transport=\"tcp\",reason=\"invalid_token\"} 3"
            ),
            "{text}"
        );
        assert!(text.contains("meniscus_test_fsyncs_total 1"), "{text}");
        assert!(text.contains("# TYPE meniscus_test_open_connections gauge"));
        assert!(text.contains(r#"transport="a\"b"} 1"#), "{text}");
        assert_eq!(failures.get(&["tcp", "invalid_token"]), 3);
        assert_eq!(failures.get(&["udp", "invalid_token"]), 0);
    }

    #[test]
    fn a_handle_and_a_lookup_share_one_series() {
        let registry = Registry::new();
        let family = registry.counters("meniscus_test_events_total", "E.", &["tenant"]);
        let handle = family.with(&["acme"]);
        handle.add(2);
        family.inc(&["acme"]);
        assert_eq!(family.get(&["acme"]), 3);
        assert_eq!(handle.get(), 3);
        family.add(&["globex"], 4);
        assert_eq!(family.total(), 7);
    }

    #[test]
    fn tenant_series_are_left_out_where_strangers_read() {
        let registry = Registry::new();
        registry
            .counters("meniscus_test_events_total", "E.", &["tenant"])
            .inc(&["acme"]);
        registry.counter("meniscus_test_fsyncs_total", "F.").inc();
        let public = registry.render(Exposure::WithoutTenants);
        assert!(!public.contains("acme"), "{public}");
        assert!(public.contains("meniscus_test_fsyncs_total 1"));
        assert!(registry.render(Exposure::Full).contains("acme"));
    }

    #[test]
    fn histograms_render_cumulative_buckets_in_seconds() {
        let registry = Registry::new();
        let latency =
            registry.histogram("meniscus_test_duration_seconds", "D.", &[0.001, 0.01, 0.1]);
        latency.observe(Duration::from_micros(500));
        latency.observe(Duration::from_millis(5));
        latency.observe(Duration::from_secs(2));
        let text = registry.render(Exposure::Full);
        assert!(
            text.contains("meniscus_test_duration_seconds_bucket{le=\"0.001\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("meniscus_test_duration_seconds_bucket{le=\"0.01\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("meniscus_test_duration_seconds_bucket{le=\"0.1\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("meniscus_test_duration_seconds_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("meniscus_test_duration_seconds_count 3"),
            "{text}"
        );
        assert!(
            text.contains("meniscus_test_duration_seconds_sum 2.0055"),
            "{text}"
        );
        let by_kind = registry.histograms(
            "meniscus_test_query_seconds",
            "Q.",
            &["kind"],
            LATENCY_BUCKETS,
        );
        by_kind.with(&["sql"]).observe(Duration::from_millis(3));
        let text = registry.render(Exposure::Full);
        assert!(
            text.contains("meniscus_test_query_seconds_bucket{kind=\"sql\",le=\"0.005\"} 1"),
            "{text}"
        );
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn one_name_is_registered_once() {
        let registry = Registry::new();
        registry.counter("meniscus_test_x_total", "X.");
        registry.counter("meniscus_test_x_total", "X.");
    }
}
