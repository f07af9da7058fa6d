//! DBC databases, loaded with the `can-dbc` crate and reduced to what the
//! policy compiler needs: messages by name and id, signal layouts, scaling,
//! ranges, multiplexing and value tables.
//!
//! Every DBC under `shared/data/dbc` loads (tested). A file that does not
//! parse is reported with its path and the parser's line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use can_dbc::{ByteOrder as DbcOrder, MessageId, MultiplexIndicator, NumericValue, ValueType};
use gateway_core::signal::{ByteOrder, Layout};

/// One signal of a message.
#[derive(Clone, Debug, PartialEq)]
pub struct DbcSignal {
    /// Signal name.
    pub name: String,
    /// Bit layout.
    pub layout: Layout,
    /// physical = raw * factor + offset.
    pub factor: f64,
    /// See `factor`.
    pub offset: f64,
    /// Declared physical minimum (DBC `[min|max]`).
    pub min: f64,
    /// Declared physical maximum.
    pub max: f64,
    /// Unit.
    pub unit: String,
    /// This signal is the message's multiplexor.
    pub is_switch: bool,
    /// Present only when the multiplexor has this value.
    pub mux_value: Option<u64>,
    /// Named raw values (VAL_).
    pub values: Vec<(i128, String)>,
}

impl DbcSignal {
    /// Physical value of a raw value.
    pub fn physical(&self, raw: i128) -> f64 {
        raw as f64 * self.factor + self.offset
    }
    /// Raw value of a value name.
    pub fn value_named(&self, name: &str) -> Option<i128> {
        self.values.iter().find(|(_, n)| n == name).map(|(v, _)| *v)
    }
    /// Name of a raw value.
    pub fn name_of(&self, raw: i128) -> Option<&str> {
        self.values
            .iter()
            .find(|(v, _)| *v == raw)
            .map(|(_, n)| n.as_str())
    }
}

/// One message.
#[derive(Clone, Debug, PartialEq)]
pub struct DbcMessage {
    /// Name.
    pub name: String,
    /// Identifier (without the DBC extended flag).
    pub id: u32,
    /// 29-bit identifier.
    pub extended: bool,
    /// Declared payload size in bytes.
    pub size: u8,
    /// Signals in file order.
    pub signals: Vec<DbcSignal>,
    /// The DBC file it came from.
    pub file: PathBuf,
}

impl DbcMessage {
    /// A signal by name.
    pub fn signal(&self, name: &str) -> Option<&DbcSignal> {
        self.signals.iter().find(|s| s.name == name)
    }
    /// The multiplexor signal, if any.
    pub fn switch(&self) -> Option<&DbcSignal> {
        self.signals.iter().find(|s| s.is_switch)
    }
}

/// Every message of every loaded file.
#[derive(Clone, Debug, Default)]
pub struct Database {
    /// Messages in load order.
    pub messages: Vec<DbcMessage>,
    by_name: BTreeMap<String, Vec<usize>>,
}

/// A DBC file that could not be loaded.
#[derive(Debug)]
pub struct DbcError {
    /// The file.
    pub file: PathBuf,
    /// What went wrong (with line and column when the parser gives them).
    pub message: String,
}

impl std::fmt::Display for DbcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for DbcError {}

fn num(v: &NumericValue) -> f64 {
    match *v {
        NumericValue::Uint(u) => u as f64,
        NumericValue::Int(i) => i as f64,
        NumericValue::Double(d) => d,
    }
}

impl Database {
    /// Loads files in order.
    pub fn load(files: &[PathBuf]) -> Result<Database, DbcError> {
        let mut db = Database::default();
        for f in files {
            db.add_file(f)?;
        }
        Ok(db)
    }

    /// Adds one file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), DbcError> {
        let err = |message: String| DbcError {
            file: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
        // Some DBC files carry Latin-1 comments; only ASCII matters to us.
        let text = String::from_utf8_lossy(&bytes);
        self.add_text(path, &text)
    }

    /// Adds DBC text (named `path` in messages).
    pub fn add_text(&mut self, path: &Path, text: &str) -> Result<(), DbcError> {
        let err = |message: String| DbcError {
            file: path.to_path_buf(),
            message,
        };
        let dbc =
            can_dbc::Dbc::try_from(text).map_err(|e| err(format!("not a valid DBC file: {e}")))?;
        let mut values: BTreeMap<(u32, String), Vec<(i128, String)>> = BTreeMap::new();
        for vd in &dbc.value_descriptions {
            if let can_dbc::ValueDescription::Signal {
                message_id,
                name,
                value_descriptions,
            } = vd
            {
                let list = value_descriptions
                    .iter()
                    .map(|v| (i128::from(v.id), v.description.clone()))
                    .collect();
                values.insert((message_id.raw(), name.clone()), list);
            }
        }
        for m in &dbc.messages {
            let (id, extended) = match m.id {
                MessageId::Standard(s) => (u32::from(s), false),
                MessageId::Extended(e) => (e, true),
            };
            if m.size > 8 {
                // CAN FD messages: this gateway handles classic CAN only.
                continue;
            }
            let mut signals = Vec::new();
            for s in &m.signals {
                let layout = Layout {
                    start: s.start_bit.min(255) as u8,
                    size: s.size.min(255) as u8,
                    order: match s.byte_order {
                        DbcOrder::LittleEndian => ByteOrder::Intel,
                        DbcOrder::BigEndian => ByteOrder::Motorola,
                    },
                    signed: s.value_type == ValueType::Signed,
                };
                if let Err(e) = layout.validate() {
                    return Err(err(format!(
                        "message {} signal {}: start bit {} size {} does not fit an 8-byte frame ({e:?})",
                        m.name, s.name, s.start_bit, s.size
                    )));
                }
                let (is_switch, mux_value) = match s.multiplexer_indicator {
                    MultiplexIndicator::Multiplexor => (true, None),
                    MultiplexIndicator::MultiplexedSignal(v) => (false, Some(v)),
                    MultiplexIndicator::MultiplexorAndMultiplexedSignal(v) => (true, Some(v)),
                    MultiplexIndicator::Plain => (false, None),
                };
                signals.push(DbcSignal {
                    name: s.name.clone(),
                    layout,
                    factor: s.factor,
                    offset: s.offset,
                    min: num(&s.min),
                    max: num(&s.max),
                    unit: s.unit.clone(),
                    is_switch,
                    mux_value,
                    values: values
                        .remove(&(m.id.raw(), s.name.clone()))
                        .unwrap_or_default(),
                });
            }
            self.by_name
                .entry(m.name.clone())
                .or_default()
                .push(self.messages.len());
            self.messages.push(DbcMessage {
                name: m.name.clone(),
                id,
                extended,
                size: m.size as u8,
                signals,
                file: path.to_path_buf(),
            });
        }
        Ok(())
    }

    /// Messages with this name (more than one when files disagree).
    pub fn by_name(&self, name: &str) -> Vec<&DbcMessage> {
        self.by_name
            .get(name)
            .map(|v| v.iter().map(|&i| &self.messages[i]).collect())
            .unwrap_or_default()
    }

    /// Messages with this identifier.
    pub fn by_id(&self, id: u32, extended: bool) -> Vec<&DbcMessage> {
        self.messages
            .iter()
            .filter(|m| m.id == id && m.extended == extended)
            .collect()
    }

    /// Every message name (for suggestions).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(|s| s.as_str())
    }
}
