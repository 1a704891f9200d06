//! Counters behind `srvr`, `stat`, `cons` and `mntr`.

/// Server-wide request statistics (Java's `ServerStats`).
#[derive(Debug, Default, Clone)]
pub struct ServerStats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub latency_min: i64,
    pub latency_max: i64,
    pub latency_total: i64,
    pub latency_count: i64,
    pub auth_failed: u64,
    pub last_response_size: usize,
    pub min_response_size: usize,
    pub max_response_size: usize,
}

impl ServerStats {
    pub fn record_latency(&mut self, ms: i64) {
        if self.latency_count == 0 || ms < self.latency_min {
            self.latency_min = ms;
        }
        self.latency_max = self.latency_max.max(ms);
        self.latency_total += ms;
        self.latency_count += 1;
    }

    pub fn record_response_size(&mut self, n: usize) {
        self.last_response_size = n;
        if self.min_response_size == 0 || n < self.min_response_size {
            self.min_response_size = n;
        }
        self.max_response_size = self.max_response_size.max(n);
    }

    pub fn avg_latency(&self) -> f64 {
        if self.latency_count == 0 {
            0.0
        } else {
            self.latency_total as f64 / self.latency_count as f64
        }
    }

    /// `srst`: zero everything.
    pub fn reset(&mut self) {
        *self = ServerStats::default();
    }
}

/// Per-connection statistics shown by `cons` and `stat`.
#[derive(Debug, Clone)]
pub struct ConnStats {
    pub recved: u64,
    pub sent: u64,
    pub last_op: &'static str,
    pub last_cxid: i32,
    pub last_zxid: i64,
    pub last_latency: i64,
    pub min_latency: i64,
    pub max_latency: i64,
    pub total_latency: i64,
    pub count: i64,
    pub established: i64,
    pub last_response: i64,
}

impl ConnStats {
    pub fn new(established: i64) -> ConnStats {
        ConnStats {
            recved: 0,
            sent: 0,
            last_op: "NA",
            last_cxid: -1,
            last_zxid: -1,
            last_latency: 0,
            min_latency: 0,
            max_latency: 0,
            total_latency: 0,
            count: 0,
            established,
            last_response: 0,
        }
    }

    pub fn record(&mut self, latency: i64, zxid: i64, now: i64) {
        if self.count == 0 || latency < self.min_latency {
            self.min_latency = latency;
        }
        self.max_latency = self.max_latency.max(latency);
        self.total_latency += latency;
        self.count += 1;
        self.last_latency = latency;
        self.last_zxid = zxid;
        self.last_response = now;
    }

    pub fn avg_latency(&self) -> i64 {
        if self.count == 0 {
            0
        } else {
            self.total_latency / self.count
        }
    }

    /// `crst`: zero the counters, keep identity.
    pub fn reset(&mut self) {
        let est = self.established;
        *self = ConnStats::new(est);
    }
}

/// Java prints `Latency min/avg/max` avg as a double rounded to 4 decimals (`0.0`, `1.2345`).
pub fn java_double(v: f64) -> String {
    let r = (v * 10000.0).round() / 10000.0;
    if r == r.trunc() {
        format!("{:.1}", r)
    } else {
        let s = format!("{:.4}", r);
        s.trim_end_matches('0').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(11.75), "11.75");
        assert_eq!(java_double(1.23456), "1.2346");
        assert_eq!(java_double(3.0), "3.0");
    }
}
