//! BIND's `$GENERATE` directive: one line that stands for a run of records
//! differing by a counter, as reverse zones and address blocks are usually
//! written (`$GENERATE 1-254 $ PTR host-$.example.`).
//!
//! `$GENERATE start-stop[/step] owner [ttl] [class] type rdata...`: for
//! each value of the range, every `$` in the owner and the record data is
//! replaced by the value; `${offset[,width[,base]]}` adds `offset`,
//! zero-pads to `width` digits and writes the value in `base` (`d`
//! decimal, `o` octal, `x`/`X` hexadecimal, `n`/`N` reversed nibbles
//! separated by dots, for `ip6.arpa`); `\$` is a literal `$`. This is BIND's
//! syntax (and PowerDNS's), so zone files move over unchanged. The range
//! is bounded so that a typo cannot make a reload eat the machine's
//! memory.

/// The most records one `$GENERATE` may stand for: a /16 of PTRs is
/// 65,536; more than this is far likelier a typo than a zone.
pub(super) const MAX_GENERATED: u64 = 1_000_000;

/// `start-stop[/step]`, as the values it runs through.
pub(super) fn range(text: &str) -> Result<impl Iterator<Item = u32>, String> {
    let bad = || {
        format!(
            "\"{text}\" is not a $GENERATE range (start-stop or start-stop/step, \
             0 <= start <= stop)"
        )
    };
    let (bounds, step) = match text.split_once('/') {
        Some((bounds, step)) => (bounds, step.parse::<u32>().map_err(|_| bad())?),
        None => (text, 1),
    };
    let (start, stop) = bounds.split_once('-').ok_or_else(bad)?;
    let (start, stop) = (
        start.parse::<u32>().map_err(|_| bad())?,
        stop.parse::<u32>().map_err(|_| bad())?,
    );
    if start > stop || step == 0 {
        return Err(bad());
    }
    let count = u64::from(stop - start) / u64::from(step) + 1;
    if count > MAX_GENERATED {
        return Err(format!(
            "$GENERATE range {text} stands for {count} records, more than the \
             {MAX_GENERATED} allowed"
        ));
    }
    Ok((start..=stop).step_by(step as usize))
}

/// `template` with every `$` and `${...}` replaced for `value`.
pub(super) fn expand(template: &str, value: u32) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 8);
    let mut rest = template;
    while let Some(position) = rest.find(['$', '\\']) {
        out.push_str(&rest[..position]);
        let tail = &rest[position..];
        if let Some(escaped) = tail.strip_prefix("\\$") {
            out.push('$');
            rest = escaped;
        } else if let Some(escaped) = tail.strip_prefix('\\') {
            // Other escapes are the record data's business: keep them,
            // with the character they escape.
            out.push('\\');
            let next = escaped.chars().next().map_or(0, char::len_utf8);
            out.push_str(&escaped[..next]);
            rest = &escaped[next..];
        } else if let Some(modifier) = tail.strip_prefix("${") {
            let end = modifier
                .find('}')
                .ok_or_else(|| format!("\"{template}\": '${{' without a closing '}}'"))?;
            format_value(&mut out, &modifier[..end], value)
                .map_err(|message| format!("\"{template}\": {message}"))?;
            rest = &modifier[end + 1..];
        } else {
            out.push_str(&value.to_string());
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Writes `value` as `${offset,width,base}` says.
fn format_value(out: &mut String, modifier: &str, value: u32) -> Result<(), String> {
    let mut parts = modifier.split(',');
    let offset = match parts.next().map(str::trim) {
        None | Some("") => 0,
        Some(text) => text
            .parse::<i64>()
            .map_err(|_| format!("offset \"{text}\" is not a number"))?,
    };
    let width = match parts.next().map(str::trim) {
        None | Some("") => 0,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|width| *width <= 64)
            .ok_or_else(|| format!("width \"{text}\" is not a number up to 64"))?,
    };
    let base = parts.next().map_or("d", str::trim);
    if parts.next().is_some() {
        return Err(format!(
            "${{{modifier}}} has more than offset, width and base"
        ));
    }
    let shifted = i64::from(value) + offset;
    let shifted =
        u64::try_from(shifted).map_err(|_| format!("offset {offset} makes {value} negative"))?;
    match base {
        "d" => out.push_str(&format!("{shifted:0width$}")),
        "o" => out.push_str(&format!("{shifted:0width$o}")),
        "x" => out.push_str(&format!("{shifted:0width$x}")),
        "X" => out.push_str(&format!("{shifted:0width$X}")),
        "n" | "N" => {
            // Least significant nibble first, as ip6.arpa names are read.
            let digits = format!("{shifted:0width$x}");
            let nibbles: Vec<String> = digits
                .chars()
                .rev()
                .map(|nibble| {
                    if base == "N" {
                        nibble.to_ascii_uppercase().to_string()
                    } else {
                        nibble.to_string()
                    }
                })
                .collect();
            out.push_str(&nibbles.join("."));
        }
        other => {
            return Err(format!("base \"{other}\" is not one of d, o, x, X, n, N"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_run_from_start_to_stop_by_step() {
        assert_eq!(
            range("1-4").expect("range").collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(
            range("0-10/5").expect("range").collect::<Vec<_>>(),
            [0, 5, 10]
        );
        assert_eq!(range("7-7").expect("range").collect::<Vec<_>>(), [7]);
        for bad in ["4-1", "1-", "-3", "a-b", "1-4/0", "1..4", ""] {
            assert!(range(bad).is_err(), "{bad}");
        }
        assert!(
            range("0-4294967295")
                .err()
                .is_some_and(|error| error.contains("more than the 1000000 allowed")),
        );
    }

    #[test]
    fn dollars_become_the_value_as_modifiers_say() {
        assert_eq!(expand("host-$", 7).expect("plain"), "host-7");
        assert_eq!(expand("$.$", 3).expect("twice"), "3.3");
        assert_eq!(expand("a${10}", 5).expect("offset"), "a15");
        assert_eq!(expand("a${-1}", 5).expect("negative offset"), "a4");
        assert_eq!(expand("${0,3}", 5).expect("width"), "005");
        assert_eq!(expand("${0,4,x}", 255).expect("hex"), "00ff");
        assert_eq!(expand("${0,0,X}", 255).expect("HEX"), "FF");
        assert_eq!(expand("${0,0,o}", 8).expect("octal"), "10");
        assert_eq!(expand("${0,4,n}", 0x1a).expect("nibbles"), "a.1.0.0");
        assert_eq!(expand("${0,2,N}", 0xab).expect("NIBBLES"), "B.A");
        assert_eq!(expand("\\$x$", 1).expect("escaped"), "$x1");
        assert_eq!(expand("a\\.b$", 2).expect("other escapes kept"), "a\\.b2");
    }

    #[test]
    fn bad_modifiers_are_named() {
        assert!(expand("${1", 1).is_err());
        assert!(expand("${x}", 1).is_err());
        assert!(expand("${0,3,q}", 1).is_err_and(|error| error.contains("base \"q\"")));
        assert!(expand("${-5}", 1).is_err_and(|error| error.contains("negative")));
        assert!(expand("${0,1,d,9}", 1).is_err());
        assert!(expand("${0,99}", 1).is_err());
    }
}
