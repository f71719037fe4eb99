//! Figures over several runs, and the Markdown table that shows them.

use std::fmt::Write as _;

/// How a figure is written.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// Calls per second, whole numbers with thousands separators.
    CallsPerSecond,
    /// Microseconds.
    Micros,
    /// Milliseconds.
    Millis,
    /// Seconds.
    Seconds,
    /// Megabytes (10⁶ bytes) per second.
    MegabytesPerSecond,
    /// Megabytes (10⁶ bytes), one decimal.
    Megabytes,
    /// Objects per second.
    ObjectsPerSecond,
    /// Milliseconds of CPU time.
    CpuMillis,
    /// A number of events.
    Count,
    /// A ratio of two figures taken in the same run.
    Ratio,
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Self::CallsPerSecond => "calls/s",
            Self::Micros => "µs",
            Self::Millis => "ms",
            Self::Seconds => "s",
            Self::MegabytesPerSecond => "MB/s",
            Self::Megabytes => "MB",
            Self::ObjectsPerSecond => "objects/s",
            Self::CpuMillis => "ms CPU",
            Self::Count => "count",
            Self::Ratio => "×",
        }
    }

    fn format(self, value: f64) -> String {
        match self {
            Self::CallsPerSecond
            | Self::MegabytesPerSecond
            | Self::ObjectsPerSecond
            | Self::CpuMillis
            | Self::Count => thousands(value.round() as u64),
            Self::Micros | Self::Megabytes => format!("{value:.1}"),
            Self::Millis if value >= 100.0 => format!("{value:.0}"),
            Self::Millis => format!("{value:.2}"),
            Self::Seconds => format!("{value:.3}"),
            Self::Ratio => format!("{value:.2}"),
        }
    }
}

/// A whole number with thousands separators.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The median, the smallest and the largest of one figure over the runs.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// Summarises the values; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut values: Vec<f64> = values.into_iter().collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        let median = if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        };
        Some(Self {
            median,
            min: values[0],
            max: values[values.len() - 1],
        })
    }
}

/// A figure read from each run; `None` where a run did not measure it.
type Read<'a, R> = Box<dyn Fn(&R) -> Option<f64> + 'a>;

/// One line of the table: a heading, or a figure read from each run.
pub enum Row<'a, R> {
    Section(String),
    Figure {
        label: String,
        unit: Unit,
        value: Read<'a, R>,
    },
}

impl<'a, R> Row<'a, R> {
    pub fn section(title: impl Into<String>) -> Self {
        Self::Section(title.into())
    }

    pub fn figure(label: impl Into<String>, unit: Unit, value: impl Fn(&R) -> f64 + 'a) -> Self {
        Self::maybe(label, unit, move |run| Some(value(run)))
    }

    /// A figure that some runs may not have; a row no run has is left out.
    pub fn maybe(
        label: impl Into<String>,
        unit: Unit,
        value: impl Fn(&R) -> Option<f64> + 'a,
    ) -> Self {
        Self::Figure {
            label: label.into(),
            unit,
            value: Box::new(value),
        }
    }
}

/// The rows as a Markdown table, each figure summarised over `runs`.
pub fn markdown<R>(rows: &[Row<'_, R>], runs: &[R]) -> String {
    let mut out = String::new();
    out.push_str("| measurement | unit | median | min | max |\n");
    out.push_str("|---|---|--:|--:|--:|\n");
    for row in rows {
        match row {
            Row::Section(title) => {
                let _ = writeln!(out, "| **{title}** | | | | |");
            }
            Row::Figure { label, unit, value } => {
                let Some(summary) = Summary::of(runs.iter().filter_map(value)) else {
                    continue;
                };
                let _ = writeln!(
                    out,
                    "| {label} | {} | {} | {} | {} |",
                    unit.label(),
                    unit.format(summary.median),
                    unit.format(summary.min),
                    unit.format(summary.max),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        let odd = Summary::of([3.0, 1.0, 2.0]).expect("values");
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        let even = Summary::of([4.0, 1.0, 3.0, 2.0]).expect("values");
        assert_eq!(even.median, 2.5);
        assert!(Summary::of([]).is_none());
    }

    #[test]
    fn figures_are_written_by_unit() {
        assert_eq!(Unit::MegabytesPerSecond.format(1234.4), "1,234");
        assert_eq!(Unit::Ratio.format(0.815), "0.81");
        let rows = vec![
            Row::section("s"),
            Row::figure("x", Unit::Ratio, |r: &f64| *r),
            Row::maybe("never", Unit::Ratio, |_: &f64| None),
        ];
        let table = markdown(&rows, &[1.0, 3.0, 2.0]);
        assert!(table.contains("| **s** | | | | |"), "{table}");
        assert!(table.contains("| x | × | 2.00 | 1.00 | 3.00 |"), "{table}");
        assert!(!table.contains("never"), "{table}");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
