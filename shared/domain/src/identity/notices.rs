//! Notices to the address the CRM has for a customer when a portal login is registered for
//! the customer number or the number is added to a login. Customer number and name are
//! printed on every bill: whoever typed them, the customer hears of it at an address the
//! portal cannot change, and can object.

use super::{Mail, Mailer};
use crate::entities::BusinessPartner;
use crate::identification::same_address;
use secrecy::SecretString;
use time::OffsetDateTime;

/// How the notices name customer service when the deployment sets no contact
/// (`CustomerServiceContact`).
pub const DEFAULT_CUSTOMER_SERVICE: &str = "unseren Kundenservice";

/// What happened to the customer number.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    Registered { username: &'a str, at: OffsetDateTime },
    NumberAdded { username: &'a str, at: OffsetDateTime },
}

/// `05.12.2026 um 07:12 Uhr (UTC)`.
fn when(at: OffsetDateTime) -> String {
    format!(
        "{:02}.{:02}.{} um {:02}:{:02} Uhr (UTC)",
        at.day(),
        u8::from(at.month()),
        at.year(),
        at.hour(),
        at.minute()
    )
}

/// The notice's subject and text.
pub fn notice(partner: &BusinessPartner, event: Event<'_>, customer_service: &str) -> (String, String) {
    let (subject, what, username, at) = match event {
        Event::Registered { username, at } => (
            "Neuer Zugang zum Kundenportal für Ihre Kundennummer",
            "wurde für Ihre Kundennummer {n} ein Zugang zum Kundenportal registriert",
            username,
            at,
        ),
        Event::NumberAdded { username, at } => (
            "Ihre Kundennummer wurde einem Portalzugang hinzugefügt",
            "wurde Ihre Kundennummer {n} einem Zugang zum Kundenportal hinzugefügt",
            username,
            at,
        ),
    };
    let text = format!(
        "Guten Tag,\n\nam {} {} (Benutzername {username}).\n\n\
         Waren Sie das nicht, widersprechen Sie bitte sofort über {customer_service}: Wir sperren den Zugang \
         und prüfen den Vorgang.\n",
        when(at),
        what.replace("{n}", partner.partner_number.as_str()),
    );
    (subject.to_owned(), text)
}

/// Tells the customer at the CRM's address, unless the CRM has none or it is the login's own
/// (the customer then already has the login's mails). Returns whether a mail went out; a
/// failure is logged and does not undo what committed.
pub async fn tell_crm_address(
    mailer: &impl Mailer,
    partner: &BusinessPartner,
    login_email: &str,
    event: Event<'_>,
    customer_service: &str,
) -> bool {
    let Some(to) = partner.email.as_deref().filter(|e| !e.trim().is_empty() && !same_address(e, login_email)) else {
        return false;
    };
    let (subject, text) = notice(partner, event, customer_service);
    match mailer.send(Mail { to: to.to_owned(), subject, text: SecretString::from(text) }).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(customer = %partner.partner_number, error = %e, "notice to the CRM's address not sent");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryMailer;
    use crate::testkit::{NOW, demo, run};

    #[test]
    fn the_crm_address_hears_of_a_registration_unless_it_is_the_logins_own() {
        let mailer = MemoryMailer::default();
        let mut petra = demo().partners.into_iter().find(|p| p.partner_number.as_str() == "1000005").unwrap();
        petra.email = Some("Petra.Schulz@example.org".into());
        let event = Event::Registered { username: "pschulz", at: NOW };
        assert!(run(tell_crm_address(&mailer, &petra, "angreifer@example.net", event, "Telefon 0800 1234")));
        assert!(!run(tell_crm_address(&mailer, &petra, "petra.schulz@EXAMPLE.org", event, "Telefon 0800 1234")));
        petra.email = None;
        assert!(!run(tell_crm_address(&mailer, &petra, "angreifer@example.net", event, "Telefon 0800 1234")));
        assert_eq!(
            mailer.sent(),
            [("Petra.Schulz@example.org".to_owned(), "Neuer Zugang zum Kundenportal für Ihre Kundennummer".to_owned())]
        );
        let text = &mailer.texts()[0];
        assert!(
            text.contains("am 01.12.2026 um ")
                && text.contains("Kundennummer 1000005 ein Zugang zum Kundenportal registriert"),
            "{text}"
        );
        assert!(text.contains("(Benutzername pschulz)") && text.contains("über Telefon 0800 1234:"), "{text}");
    }
}
