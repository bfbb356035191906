//! The loss lab's raw samples (kcp_loss.tsv) and their medians over rounds.
//!
//! The TSV has a header line naming its columns; this reads the ones it
//! needs by name (transport, loss, messages, p50_us, p99_us), so columns may
//! be added or reordered. One row per transport x loss x round. A run that
//! failed has 0 (or no) messages and empty latencies: it is left out, as
//! bench/kcp_loss.sh's table leaves it out.

use std::fmt;

/// The columns the chart reads.
const COLUMNS: [&str; 5] = ["transport", "loss", "messages", "p50_us", "p99_us"];

/// What is wrong with the input. Line numbers count from 1, the header
/// being line 1.
#[derive(Debug, PartialEq)]
pub enum InputError {
    /// Not even a header line.
    Empty,
    /// The header lacks these columns.
    MissingColumns(Vec<&'static str>),
    /// A row has fewer fields than the header needs.
    ShortRow {
        line: usize,
        fields: usize,
        needed: usize,
    },
    /// A field that should hold a number does not.
    BadNumber {
        line: usize,
        column: &'static str,
        value: String,
    },
    /// No successful run: `failed` rows had no messages.
    NoRows { failed: usize },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Empty => write!(f, "empty file (expected a header line)"),
            InputError::MissingColumns(cols) => {
                write!(f, "header lacks column(s): {}", cols.join(", "))
            }
            InputError::ShortRow {
                line,
                fields,
                needed,
            } => write!(
                f,
                "line {line}: {fields} tab-separated field(s), the header needs {needed}"
            ),
            InputError::BadNumber {
                line,
                column,
                value,
            } => write!(f, "line {line}: {column} is not a number >= 0: {value:?}"),
            InputError::NoRows { failed: 0 } => write!(f, "no data rows after the header"),
            InputError::NoRows { failed } => {
                write!(f, "no successful run: all {failed} row(s) have no messages")
            }
        }
    }
}

impl std::error::Error for InputError {}

/// One transport's line pair: (index into [`Medians::losses`], median in
/// ms) for each loss level that has samples.
#[derive(Debug, PartialEq)]
pub struct Series {
    pub transport: String,
    pub p50_ms: Vec<(usize, f64)>,
    pub p99_ms: Vec<(usize, f64)>,
}

/// The medians over rounds, ready to plot.
#[derive(Debug, PartialEq)]
pub struct Medians {
    /// Distinct loss levels (percent), ascending.
    pub losses: Vec<f64>,
    /// One per transport, in the order the TSV first names them (the
    /// script's TRANSPORTS order).
    pub series: Vec<Series>,
}

impl Medians {
    /// Every median in the chart, in ms.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.p50_ms.iter().chain(&s.p99_ms).map(|&(_, v)| v))
    }
}

/// One successful run.
struct Run {
    transport: usize,
    loss: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

pub fn parse(text: &str) -> Result<Medians, InputError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let header = match lines.next() {
        Some((_, h)) if !h.trim().is_empty() => h,
        _ => return Err(InputError::Empty),
    };
    let names: Vec<&str> = header.split('\t').map(str::trim).collect();
    let missing: Vec<&'static str> = COLUMNS.into_iter().filter(|c| !names.contains(c)).collect();
    if !missing.is_empty() {
        return Err(InputError::MissingColumns(missing));
    }
    let col = |name: &str| names.iter().position(|n| *n == name).unwrap_or(0);
    let [c_transport, c_loss, c_messages, c_p50, c_p99] = COLUMNS.map(col);
    let needed = [c_transport, c_loss, c_messages, c_p50, c_p99]
        .into_iter()
        .max()
        .unwrap_or(0)
        + 1;

    let mut transports: Vec<String> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut failed = 0;
    for (line, row) in lines {
        if row.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = row.split('\t').map(str::trim).collect();
        if fields.len() < needed {
            return Err(InputError::ShortRow {
                line,
                fields: fields.len(),
                needed,
            });
        }
        let number = |c: usize, column: &'static str| -> Result<Option<f64>, InputError> {
            let value = fields[c];
            if value.is_empty() {
                return Ok(None);
            }
            match value.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
                _ => Err(InputError::BadNumber {
                    line,
                    column,
                    value: value.to_string(),
                }),
            }
        };
        let messages = number(c_messages, "messages")?;
        let loss = number(c_loss, "loss")?;
        let p50_us = number(c_p50, "p50_us")?;
        let p99_us = number(c_p99, "p99_us")?;
        if messages.unwrap_or(0.0) == 0.0 {
            failed += 1;
            continue;
        }
        let Some(loss) = loss else {
            return Err(InputError::BadNumber {
                line,
                column: "loss",
                value: String::new(),
            });
        };
        let name = fields[c_transport];
        let transport = match transports.iter().position(|t| t == name) {
            Some(i) => i,
            None => {
                transports.push(name.to_string());
                transports.len() - 1
            }
        };
        runs.push(Run {
            transport,
            loss,
            p50_us,
            p99_us,
        });
    }
    if runs.is_empty() {
        return Err(InputError::NoRows { failed });
    }

    let mut losses: Vec<f64> = runs.iter().map(|r| r.loss).collect();
    losses.sort_by(f64::total_cmp);
    losses.dedup();
    let series = transports
        .into_iter()
        .enumerate()
        .map(|(t, transport)| {
            let line = |pick: fn(&Run) -> Option<f64>| -> Vec<(usize, f64)> {
                losses
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &loss)| {
                        let mut v: Vec<f64> = runs
                            .iter()
                            .filter(|r| r.transport == t && r.loss == loss)
                            .filter_map(pick)
                            .collect();
                        median(&mut v).map(|us| (i, us / 1e3))
                    })
                    .collect()
            };
            Series {
                p50_ms: line(|r| r.p50_us),
                p99_ms: line(|r| r.p99_us),
                transport,
            }
        })
        .collect();
    Ok(Medians { losses, series })
}

/// The middle value, or the mean of the two middle ones (as Python's
/// `statistics.median`, which the table uses).
fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "transport\tloss\tround\tmessages\tp50_us\tp99_us\tmax_us\tmean_us\twire_per_byte\tcpu_us_per_msg\ttimeouts\n";

    fn tsv(rows: &[&str]) -> String {
        let mut s = HEADER.to_string();
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        s
    }

    #[test]
    fn medians_over_rounds_per_transport_and_loss() {
        let m = parse(&tsv(&[
            "tcp\t0\t1\t2000\t1000\t5000\t1\t1\t1\t1\t0",
            "kcp-fast\t0\t1\t2000\t200\t2000\t1\t1\t1\t1\t0",
            "tcp\t5\t1\t1998\t2000\t900000\t1\t1\t1\t1\t0",
            "tcp\t0\t2\t2000\t3000\t7000\t1\t1\t1\t1\t0",
            "tcp\t0\t3\t2000\t2000\t6000\t1\t1\t1\t1\t0",
            "tcp\t5\t2\t1998\t4000\t1000000\t1\t1\t1\t1\t0",
        ]))
        .unwrap();
        assert_eq!(m.losses, vec![0.0, 5.0]);
        assert_eq!(
            m.series,
            vec![
                Series {
                    transport: "tcp".into(),
                    p50_ms: vec![(0, 2.0), (1, 3.0)],
                    p99_ms: vec![(0, 6.0), (1, 950.0)],
                },
                Series {
                    transport: "kcp-fast".into(),
                    p50_ms: vec![(0, 0.2)],
                    p99_ms: vec![(0, 2.0)],
                },
            ]
        );
    }

    #[test]
    fn failed_runs_and_blank_lines_are_left_out() {
        let m = parse(&tsv(&[
            "tcp\t0\t1\t2000\t1000\t5000\t1\t1\t1\t1\t0",
            "tcp\t1\t1\t0\t\t\t\t\t\t\tfailed",
            "",
            "kcp-fast\t10\t1\t\t\t\t\t\t\t\tfailed",
        ]))
        .unwrap();
        assert_eq!(m.losses, vec![0.0]);
        assert_eq!(m.series.len(), 1);
    }

    #[test]
    fn columns_are_found_by_name() {
        let m =
            parse("p99_us\tp50_us\tmessages\tloss\ttransport\n5000\t1000\t10\t1\ttcp\n").unwrap();
        assert_eq!(m.losses, vec![1.0]);
        assert_eq!(m.series[0].p50_ms, vec![(0, 1.0)]);
        assert_eq!(m.series[0].p99_ms, vec![(0, 5.0)]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let bad_number = |line, column, value: &str| InputError::BadNumber {
            line,
            column,
            value: value.into(),
        };
        let cases: &[(&str, String, InputError)] = &[
            ("empty", String::new(), InputError::Empty),
            (
                "missing columns",
                "transport\tloss\tmessages\n".into(),
                InputError::MissingColumns(vec!["p50_us", "p99_us"]),
            ),
            ("header only", tsv(&[]), InputError::NoRows { failed: 0 }),
            (
                "only failed runs",
                tsv(&["tcp\t1\t1\t0\t\t\t\t\t\t\tfailed"]),
                InputError::NoRows { failed: 1 },
            ),
            (
                "short row",
                tsv(&["tcp\t0\t1\t2000"]),
                InputError::ShortRow {
                    line: 2,
                    fields: 4,
                    needed: 6,
                },
            ),
            (
                "malformed latency",
                tsv(&["tcp\t0\t1\t2000\t1.2.3\t5000\t1\t1\t1\t1\t0"]),
                bad_number(2, "p50_us", "1.2.3"),
            ),
            (
                "negative loss",
                tsv(&["tcp\t-1\t1\t2000\t1000\t5000\t1\t1\t1\t1\t0"]),
                bad_number(2, "loss", "-1"),
            ),
            (
                "not finite",
                tsv(&["tcp\t0\t1\t2000\t1000\tinf\t1\t1\t1\t1\t0"]),
                bad_number(2, "p99_us", "inf"),
            ),
            (
                "no loss",
                tsv(&["tcp\t\t1\t2000\t1000\t5000\t1\t1\t1\t1\t0"]),
                bad_number(2, "loss", ""),
            ),
            (
                "malformed messages",
                tsv(&["tcp\t0\t1\tmany\t1000\t5000\t1\t1\t1\t1\t0"]),
                bad_number(2, "messages", "many"),
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(parse(input).as_ref(), Err(want), "{name}");
        }
    }

    #[test]
    fn median_of_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
