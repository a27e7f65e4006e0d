//! Subject DN normalisation for `x509-cert` credentials.
//!
//! Hono stores a certificate credential's `auth-id` as the subject DN in RFC 2253
//! form (Java's `X500Principal.getName(RFC2253)`) and compares strings. The gateway
//! and the administrator may write the same DN differently (`CN=dev1, O=Acme` vs
//! `cn=dev1,o=Acme`, `OID.2.5.4.3=dev1`, quoted values, `;` separators), so both the
//! stored auth-id and the looked-up DN go through [`normalize_subject_dn`].
//!
//! What it does, like Java's RFC 2253 writer: no spaces around separators, the RFC
//! 2253 keywords in upper case (OIDs of those attributes become the keyword), values
//! unescaped and re-escaped minimally, `#hex` values kept in lower case, RDN order
//! and attribute value case kept. Where it differs: other keywords (`EMAILADDRESS`,
//! `SERIALNUMBER`) are kept as upper-case keywords where Java would write the OID
//! with a DER hex value.

/// RFC 2253 keywords with the OIDs they stand for.
const KEYWORDS: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("STREET", "2.5.4.9"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
];

/// Normalises a distinguished name to RFC 2253 form; `Err` explains a malformed DN.
pub fn normalize_subject_dn(dn: &str) -> Result<String, String> {
    let mut p = Parser {
        s: dn.as_bytes(),
        i: 0,
    };
    let mut out = String::with_capacity(dn.len());
    p.skip_ws();
    if p.at_end() {
        return Err("empty distinguished name".into());
    }
    loop {
        p.skip_ws();
        let ty = p.attr_type()?;
        p.skip_ws();
        if !p.eat(b'=') {
            return Err(format!("expected '=' after attribute type {ty}"));
        }
        p.skip_ws();
        out.push_str(&ty);
        out.push('=');
        p.value(&mut out)?;
        p.skip_ws();
        match p.next() {
            None => break,
            Some(b',' | b';') => out.push(','),
            Some(b'+') => out.push('+'),
            Some(c) => return Err(format!("unexpected character {:?}", c as char)),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn attr_type(&mut self) -> Result<String, String> {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
        {
            self.i += 1;
        }
        let raw = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        if raw.is_empty() {
            return Err("missing attribute type".into());
        }
        let upper = raw.to_ascii_uppercase();
        let oid = upper.strip_prefix("OID.").unwrap_or(&upper);
        if oid.starts_with(|c: char| c.is_ascii_digit()) {
            if !oid
                .split('.')
                .all(|a| !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()))
            {
                return Err(format!("malformed OID {raw}"));
            }
            let keyword = KEYWORDS.iter().find(|(_, o)| *o == oid).map(|(k, _)| *k);
            return Ok(keyword.unwrap_or(oid).to_string());
        }
        // Legacy spelling still seen in OpenSSL output.
        Ok(if upper == "S" { "ST".into() } else { upper })
    }

    /// Reads one attribute value and appends it in RFC 2253 form.
    fn value(&mut self, out: &mut String) -> Result<(), String> {
        if self.eat(b'#') {
            let start = self.i;
            while matches!(self.peek(), Some(c) if c.is_ascii_hexdigit()) {
                self.i += 1;
            }
            let hex = &self.s[start..self.i];
            if hex.is_empty() || hex.len() % 2 != 0 {
                return Err("malformed #hex attribute value".into());
            }
            out.push('#');
            out.extend(hex.iter().map(|c| c.to_ascii_lowercase() as char));
            return Ok(());
        }
        let mut bytes = Vec::new();
        if self.eat(b'"') {
            // RFC 1779 quoted value: separators are literal inside quotes.
            loop {
                match self.next() {
                    None => return Err("unterminated quoted value".into()),
                    Some(b'"') => break,
                    Some(b'\\') => bytes.push(self.escaped()?),
                    Some(c) => bytes.push(c),
                }
            }
        } else {
            // Trailing unescaped spaces are not part of the value; escaped ones are.
            let mut keep = 0;
            while let Some(c) = self.peek() {
                match c {
                    b',' | b';' | b'+' => break,
                    b'\\' => {
                        self.i += 1;
                        bytes.push(self.escaped()?);
                        keep = bytes.len();
                    }
                    b'"' | b'<' | b'>' => {
                        return Err(format!("unescaped {:?} in attribute value", c as char));
                    }
                    _ => {
                        self.i += 1;
                        bytes.push(c);
                        if c != b' ' {
                            keep = bytes.len();
                        }
                    }
                }
            }
            bytes.truncate(keep);
        }
        let text = String::from_utf8(bytes).map_err(|_| "attribute value is not UTF-8")?;
        escape_into(&text, out);
        Ok(())
    }

    /// After a backslash: a special character or two hex digits (one UTF-8 byte).
    fn escaped(&mut self) -> Result<u8, String> {
        let c = self.next().ok_or("dangling backslash")?;
        if c.is_ascii_hexdigit() {
            let d = self
                .next()
                .filter(u8::is_ascii_hexdigit)
                .ok_or("malformed \\hex escape")?;
            let hex = [c, d];
            let hex = std::str::from_utf8(&hex).map_err(|e| e.to_string())?;
            return u8::from_str_radix(hex, 16).map_err(|e| e.to_string());
        }
        Ok(c)
    }
}

/// RFC 2253 section 2.4 escaping: the specials anywhere, `#` and space at the start,
/// space at the end.
fn escape_into(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (n, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (n == 0 && (c == '#' || c == ' '))
            || (n == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_subject_dn as n;

    #[test]
    fn spacing_and_keyword_case_are_normalised() {
        let want = "CN=Device 1,OU=Sensors,O=ACME Corp,C=DE";
        assert_eq!(n(want).unwrap(), want);
        assert_eq!(
            n("cn=Device 1, ou=Sensors , O = ACME Corp;c=DE").unwrap(),
            want
        );
        assert_eq!(
            n("  CN=Device 1,OU=Sensors,O=ACME Corp,C=DE  ").unwrap(),
            want
        );
    }

    #[test]
    fn value_case_is_kept() {
        assert_ne!(n("CN=dev1").unwrap(), n("CN=DEV1").unwrap());
    }

    #[test]
    fn oids_of_known_attributes_become_keywords() {
        assert_eq!(n("OID.2.5.4.3=dev,2.5.4.10=Acme").unwrap(), "CN=dev,O=Acme");
        assert_eq!(n("1.2.3.4=#0403414243").unwrap(), "1.2.3.4=#0403414243");
        assert_eq!(
            n("S=Bavaria,emailAddress=a@b").unwrap(),
            "ST=Bavaria,EMAILADDRESS=a@b"
        );
    }

    #[test]
    fn escapes_and_quotes_round_trip_to_one_form() {
        assert_eq!(
            n(r#"CN="Smith, John",O=x"#).unwrap(),
            r"CN=Smith\, John,O=x"
        );
        assert_eq!(n(r"CN=Smith\, John,O=x").unwrap(), r"CN=Smith\, John,O=x");
        assert_eq!(n(r"CN=Smith\2C John,O=x").unwrap(), r"CN=Smith\, John,O=x");
        assert_eq!(n(r"CN=Jos\C3\A9").unwrap(), "CN=José");
        assert_eq!(n(r"CN=\#hash\ ").unwrap(), r"CN=\#hash\ ");
        assert_eq!(n("CN=a+UID=7,O=x").unwrap(), "CN=a+UID=7,O=x");
        assert_eq!(n("CN=a=b").unwrap(), "CN=a=b");
    }

    #[test]
    fn malformed_dns_are_refused() {
        for bad in [
            "",
            "   ",
            "CN",
            "=x",
            "CN=a,",
            r"CN=a\",
            r"CN=\zz\1",
            "CN=\"open",
            "CN=<x>",
            "1..2=x",
            "CN=#abc",
            r"CN=\FF",
        ] {
            assert!(n(bad).is_err(), "{bad:?} -> {:?}", n(bad));
        }
    }
}
