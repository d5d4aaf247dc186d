//! `buttons` on `channels.send`, the part every connector shares: the rows as the request
//! gives them, their checks against the contract and the platform's limits, and where they
//! go (the send's last message). Each connector only writes them in its platform's shape
//! (Telegram `inline_keyboard`, Discord components, Slack Block Kit `actions`).

use serde::Deserialize;

use crate::protocol::{ErrorBody, ErrorCode};

/// The longest `action`, in bytes: Telegram's `callback_data` limit, the strictest.
pub const MAX_ACTION_BYTES: usize = 64;

/// One button: what it says, and what a press reports back as `action`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    pub text: String,
    pub action: String,
}

/// Rows of buttons, top to bottom.
pub type Rows = Vec<Vec<Button>>;

/// What a platform takes.
pub struct ButtonLimits {
    pub platform: &'static str,
    pub max_rows: usize,
    pub max_per_row: usize,
    pub max_total: usize,
    /// Longest button text, in characters.
    pub max_text: usize,
}

/// Check `rows` against the contract and `limits`; the `INVALID_REQUEST` naming the first
/// problem (which row and button, and the limit).
pub fn check(rows: &Rows, limits: &ButtonLimits) -> Result<(), ErrorBody> {
    let refuse = |msg: String| Err(ErrorBody::new(ErrorCode::InvalidRequest, msg));
    let p = limits.platform;
    if rows.len() > limits.max_rows {
        return refuse(format!(
            "buttons: {} rows; {p} takes at most {}",
            rows.len(),
            limits.max_rows
        ));
    }
    let total: usize = rows.iter().map(Vec::len).sum();
    if total > limits.max_total {
        return refuse(format!(
            "buttons: {total} buttons; {p} takes at most {}",
            limits.max_total
        ));
    }
    for (r, row) in rows.iter().enumerate() {
        let at = |b: usize| format!("buttons[{r}][{b}]");
        if row.is_empty() {
            return refuse(format!("buttons[{r}] is an empty row"));
        }
        if row.len() > limits.max_per_row {
            return refuse(format!(
                "buttons[{r}] has {} buttons; {p} takes at most {} in a row",
                row.len(),
                limits.max_per_row
            ));
        }
        for (b, button) in row.iter().enumerate() {
            if button.text.trim().is_empty() {
                return refuse(format!("{}.text must not be empty", at(b)));
            }
            let chars = button.text.chars().count();
            if chars > limits.max_text {
                return refuse(format!(
                    "{}.text is {chars} characters; {p} shows at most {}",
                    at(b),
                    limits.max_text
                ));
            }
            if button.action.is_empty() || button.action.len() > MAX_ACTION_BYTES {
                return refuse(format!(
                    "{}.action is {} bytes; it must be 1 to {MAX_ACTION_BYTES}",
                    at(b),
                    button.action.len()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: ButtonLimits = ButtonLimits {
        platform: "Discord",
        max_rows: 5,
        max_per_row: 5,
        max_total: 25,
        max_text: 80,
    };

    fn b(text: &str, action: &str) -> Button {
        Button {
            text: text.into(),
            action: action.into(),
        }
    }

    #[test]
    fn buttons_are_checked_against_the_contract_and_the_platform() {
        assert!(
            check(
                &vec![vec![b("Approve", "approve:42"), b("Reject", "reject:42")]],
                &L
            )
            .is_ok()
        );
        let e = check(&vec![vec![b("x", &"a".repeat(65))]], &L).unwrap_err();
        assert!(
            e.message.contains("buttons[0][0].action is 65 bytes"),
            "{}",
            e.message
        );
        let e = check(&vec![vec![b(" ", "a")]], &L).unwrap_err();
        assert!(e.message.contains("buttons[0][0].text must not be empty"));
        let e = check(&vec![vec![b("x", "a")]; 6], &L).unwrap_err();
        assert!(
            e.message.contains("6 rows; Discord takes at most 5"),
            "{}",
            e.message
        );
        let e = check(&vec![vec![b("x", "a"); 6]], &L).unwrap_err();
        assert!(e.message.contains("at most 5 in a row"), "{}", e.message);
        let e = check(&vec![vec![]], &L).unwrap_err();
        assert!(e.message.contains("empty row"));
        let e = check(&vec![vec![b(&"y".repeat(81), "a")]], &L).unwrap_err();
        assert!(e.message.contains("at most 80"));
        assert!(check(&vec![vec![b("x", "")]], &L).is_err());
    }
}
