//! Input checks shared by the handlers. Each returns the cleaned value or a
//! `validation_failed` error that names the field and the accepted form.

use crate::error::AppError;

/// Maximum email length (RFC 5321 limits a forward path to 256 octets including brackets).
const MAX_EMAIL_LEN: usize = 254;

/// Trims and lowercases an email, and checks its basic form `local@domain.tld`.
pub fn email(raw: &str) -> Result<String, AppError> {
    let email = raw.trim().to_lowercase();
    let well_formed = email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if well_formed {
        Ok(email)
    } else {
        Err(AppError::validation(
            "email must look like name@example.com and be at most 254 characters",
        ))
    }
}

/// Checks a password's length in characters.
pub fn password(password: &str) -> Result<(), AppError> {
    use velro_shared::api::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
    let length = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        Ok(())
    } else {
        Err(AppError::validation(format!(
            "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long"
        )))
    }
}

/// Trims a required text field and checks it is 1 to `max_chars` characters.
pub fn required_text(field: &str, raw: &str, max_chars: usize) -> Result<String, AppError> {
    let value = raw.trim();
    let length = value.chars().count();
    if length == 0 || length > max_chars {
        return Err(AppError::validation(format!(
            "{field} must be 1 to {max_chars} characters long"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(AppError::validation(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(value.to_string())
}

/// Checks an optional free-text field of at most `max_chars` characters.
pub fn optional_text(field: &str, raw: &str, max_chars: usize) -> Result<String, AppError> {
    let value = raw.trim();
    if value.chars().count() > max_chars {
        return Err(AppError::validation(format!(
            "{field} must be at most {max_chars} characters long"
        )));
    }
    Ok(value.to_string())
}

/// Returns a UUID in its canonical lowercase hyphenated form, the form every stored id has;
/// `None` when `raw` is not a UUID.
pub fn canonical_uuid(raw: &str) -> Option<String> {
    uuid::Uuid::try_parse(raw).ok().map(|id| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalised() {
        assert_eq!(email("  Demo1@Velro.Test ").unwrap(), "demo1@velro.test");
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "no-at",
            "@velro.test",
            "a@b",
            "a b@velro.test",
            "a@@velro.test",
            "a@.velro",
            "a@velro.",
        ] {
            assert!(email(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn password_length_counts_characters() {
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
        assert!(password(&"é".repeat(256)).is_ok());
        assert!(password(&"é".repeat(257)).is_err());
    }

    #[test]
    fn uuid_is_canonicalised() {
        let canonical = "01938a4e-0000-7000-8000-00000000abcd";
        assert_eq!(
            canonical_uuid("01938A4E-0000-7000-8000-00000000ABCD").as_deref(),
            Some(canonical)
        );
        assert_eq!(canonical_uuid(canonical).as_deref(), Some(canonical));
        assert_eq!(canonical_uuid("not-a-uuid"), None);
    }

    #[test]
    fn required_text_trims_and_bounds() {
        assert_eq!(
            required_text("name", "  Sketches ", 100).unwrap(),
            "Sketches"
        );
        assert!(required_text("name", "   ", 100).is_err());
        assert!(required_text("name", &"x".repeat(101), 100).is_err());
        assert!(required_text("name", "bell\u{7}", 100).is_err());
    }
}
