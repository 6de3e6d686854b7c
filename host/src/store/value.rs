//! The values that cross the store's boundary, the same for every back end: parameters go in as
//! [`Value`]s, rows come out as [`Row`]s of them. Query modules read a row once, whichever
//! database produced it.

use super::StoreError;

/// One SQL value. Booleans are integers (0 or 1) on both back ends, timestamps are Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A Rust value that binds as a SQL parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
integers!(i64, i32, u32, u16, u8, bool);

impl ToValue for u64 {
    /// Counters and sizes beyond `i64::MAX` do not occur; saturating keeps the bind infallible.
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// The parameters of one statement, in `?1`, `?2`, … order.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_params {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::ToValue::to_value(&$value)),*]
    };
}
pub use crate::sql_params as params;

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    pub(super) fn new(values: Vec<Value>) -> Self {
        Self { values }
    }

    /// Column `index`, converted to `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T, StoreError> {
        let value = self.values.get(index).ok_or_else(|| StoreError::Decode {
            column: index,
            reason: format!("the row has only {} columns", self.values.len()),
        })?;
        T::from_value(value).map_err(|reason| StoreError::Decode {
            column: index,
            reason,
        })
    }

    /// Column `index` as text parsed by `parse`, for enums and JSON kept in text columns.
    pub fn parse<T>(
        &self,
        index: usize,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, StoreError> {
        let text: String = self.get(index)?;
        parse(&text).map_err(|reason| StoreError::Decode {
            column: index,
            reason,
        })
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }
}

/// A Rust value read from a SQL column.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, String>;
}

fn unexpected(wanted: &str, value: &Value) -> String {
    let found = match value {
        Value::Null => "NULL",
        Value::Int(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    };
    format!("expected {wanted}, found {found}")
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(i) => Ok(*i),
            other => Err(unexpected("an integer", other)),
        }
    }
}

macro_rules! narrow_integers {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<Self, String> {
                let wide = i64::from_value(value)?;
                <$t>::try_from(wide).map_err(|_| format!("{wide} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
narrow_integers!(i32, u32, u64, u16, usize);

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        Ok(i64::from_value(value)? != 0)
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Real(r) => Ok(*r),
            Value::Int(i) => Ok(*i as f64),
            other => Err(unexpected("a real", other)),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(text) => Ok(text.clone()),
            other => Err(unexpected("text", other)),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Blob(bytes) => Ok(bytes.clone()),
            other => Err(unexpected("a blob", other)),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, String> {
        Ok(value.clone())
    }
}

/// Parses a `snake_case` enum kept as text through its serde name.
pub fn serde_name<T: for<'de> serde::Deserialize<'de>>(text: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|err| err.to_string())
}
