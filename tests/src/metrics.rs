//! Reading the host's metrics the way Prometheus would: from the text encoding.

use prometheus_client::registry::Registry;

/// The registry in the text exposition format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encoding metrics");
    text
}

/// The sum of every sample of `name` whose labels include all of `labels` (`key="value"`
/// pairs as written in the exposition). Absent series sum to 0.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = labels.iter().all(|(k, v)| {
                label_text
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            });
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_matching_series_only() {
        let text = "# HELP x_total x\n# TYPE x_total counter\n\
                    x_total{plugin=\"a\",result=\"ok\"} 3\n\
                    x_total{plugin=\"a\",result=\"error\"} 2\n\
                    x_total{plugin=\"b\",result=\"ok\"} 7\n\
                    x_total_other{plugin=\"a\"} 100\n\
                    y 1.5\n";
        assert_eq!(sum(text, "x_total", &[("plugin", "a")]), 5.0);
        assert_eq!(
            sum(text, "x_total", &[("plugin", "a"), ("result", "ok")]),
            3.0
        );
        assert_eq!(sum(text, "x_total", &[]), 12.0);
        assert_eq!(sum(text, "y", &[]), 1.5);
        assert_eq!(sum(text, "z", &[]), 0.0);
    }
}
