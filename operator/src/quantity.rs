//! Kubernetes quantities (`2Gi`, `500M`, `1e9`) as bytes, for what the operator derives from
//! a volume's size (a spool's quota).

/// Bytes in `quantity`, or `None` if it is not a plain byte quantity.
pub fn bytes(quantity: &str) -> Option<u64> {
    let quantity = quantity.trim();
    let split = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse().ok()?),
        _ => return None,
    };
    let bytes = number * scale;
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_become_bytes() {
        for (quantity, expected) in [
            ("2Gi", Some(2 << 30)),
            ("512Mi", Some(512 << 20)),
            ("1.5Ki", Some(1536)),
            ("10G", Some(10_000_000_000)),
            ("100", Some(100)),
            ("1e3", Some(1000)),
            ("2Gb", None),
            ("Gi", None),
            ("", None),
        ] {
            assert_eq!(bytes(quantity), expected, "{quantity}");
        }
    }
}
