//! Problems found in manifests, rendered like a compiler's:
//!
//! ```text
//! error: unknown field `replica`, did you mean `replicas`?
//!   --> apps/web.yaml:7:3 (Deployment default/web: spec.replica)
//! ```

use std::fmt;

use serde::Serialize;

use super::model::SourceLocation;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    pub severity: Severity,
    /// One line, lowercase, no trailing period.
    pub message: String,
    pub location: SourceLocation,
    /// `Deployment default/web`, when the object is known.
    pub object: Option<String>,
    /// `spec.template.spec.containers[0].image`, when inside an object.
    pub field_path: Option<String>,
    /// What to do about it, when there is something useful to say.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, location: SourceLocation) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            location,
            object: None,
            field_path: None,
            hint: None,
        }
    }

    pub fn warning(message: impl Into<String>, location: SourceLocation) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message, location)
        }
    }

    pub fn with_object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    pub fn with_field_path(mut self, path: impl Into<String>) -> Self {
        self.field_path = Some(path.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{severity}: {}", self.message)?;
        write!(f, "  --> {}", self.location)?;
        match (&self.object, &self.field_path) {
            (Some(object), Some(path)) => write!(f, " ({object}: {path})")?,
            (Some(object), None) => write!(f, " ({object})")?,
            (None, Some(path)) => write!(f, " ({path})")?,
            (None, None) => {}
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = hint: {hint}")?;
        }
        Ok(())
    }
}
