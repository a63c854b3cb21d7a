//! The events the programs print, as `docs/EVENTS.md` describes them: each kind of each
//! program with its fields and their types, and the check of one printed line against them.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

/// Which program prints an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Program {
    /// `pcxses-ac`.
    Ac,
    /// `pcxses-device`.
    Device,
}

/// A field's JSON type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
}

impl Type {
    fn parse(s: &str) -> Option<Type> {
        Some(match s {
            "string" => Type::String,
            "integer" => Type::Integer,
            "number" => Type::Number,
            "boolean" => Type::Boolean,
            "object" => Type::Object,
            "array" => Type::Array,
            _ => return None,
        })
    }

    fn holds(self, v: &Value) -> bool {
        match self {
            Type::String => v.is_string(),
            Type::Integer => v.is_u64() || v.is_i64(),
            Type::Number => v.is_number(),
            Type::Boolean => v.is_boolean(),
            Type::Object => v.is_object(),
            Type::Array => v.is_array(),
        }
    }
}

/// A documented field: its type, and whether it may be `null`.
#[derive(Clone, Copy, Debug)]
struct Field {
    ty: Type,
    nullable: bool,
}

/// Every documented event: by program and kind, its fields by name.
#[derive(Debug, Default)]
pub struct Catalogue {
    events: BTreeMap<(Program, String), BTreeMap<String, Field>>,
}

/// The section of `docs/EVENTS.md` that lists a program's events.
fn section(title: &str) -> Option<Program> {
    match title {
        "Events of the AC" => Some(Program::Ac),
        "Events of the device" => Some(Program::Device),
        _ => None,
    }
}

/// The text between the first pair of backquotes of `s`.
fn quoted(s: &str) -> Option<&str> {
    let rest = s.split_once('`')?.1;
    Some(rest.split_once('`')?.0)
}

impl Catalogue {
    /// `docs/EVENTS.md`, read and parsed once; panics if it cannot be.
    pub fn documented() -> &'static Catalogue {
        static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        CATALOGUE.get_or_init(|| {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/EVENTS.md");
            let text = std::fs::read_to_string(path).expect("docs/EVENTS.md");
            Catalogue::parse(&text).unwrap_or_else(|e| panic!("docs/EVENTS.md: {e}"))
        })
    }

    /// Parses the document: `## Events of the AC` and `## Events of the device` sections,
    /// a `### \`kind\`` heading per event, and a table row `| \`field\` | type | … |` per
    /// field, the type one of [`Type`]'s names, optionally followed by `or null`.
    pub fn parse(text: &str) -> Result<Catalogue, String> {
        let mut catalogue = Catalogue::default();
        let mut program = None;
        let mut event: Option<(Program, String)> = None;
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}", n + 1);
            if let Some(title) = line.strip_prefix("## ") {
                program = section(title.trim());
                event = None;
            } else if let Some(heading) = line.strip_prefix("### ") {
                let program =
                    program.ok_or_else(|| at("an event outside a program's section".into()))?;
                let kind =
                    quoted(heading).ok_or_else(|| at(format!("no `kind` in {heading:?}")))?;
                let key = (program, kind.to_string());
                if catalogue
                    .events
                    .insert(key.clone(), BTreeMap::new())
                    .is_some()
                {
                    return Err(at(format!("{kind} is described twice")));
                }
                event = Some(key);
            } else if let (Some(key), Some(row)) = (&event, line.strip_prefix("| `")) {
                let cells: Vec<&str> = row.split(" | ").collect();
                let name = cells[0]
                    .strip_suffix('`')
                    .ok_or_else(|| at(format!("bad field in {line:?}")))?;
                let ty = cells
                    .get(1)
                    .ok_or_else(|| at(format!("no type in {line:?}")))?;
                let (ty, nullable) = match ty.strip_suffix(" or null") {
                    Some(ty) => (ty, true),
                    None => (*ty, false),
                };
                let ty = Type::parse(ty).ok_or_else(|| at(format!("unknown type {ty:?}")))?;
                let fields = catalogue.events.get_mut(key).expect("inserted");
                if fields
                    .insert(name.to_string(), Field { ty, nullable })
                    .is_some()
                {
                    return Err(at(format!("{name} is described twice")));
                }
            }
        }
        if !catalogue.events.keys().any(|(p, _)| *p == Program::Ac)
            || !catalogue.events.keys().any(|(p, _)| *p == Program::Device)
        {
            return Err("the AC's or the device's section is missing".into());
        }
        Ok(catalogue)
    }

    /// The kinds of events documented for `program`.
    pub fn kinds(&self, program: Program) -> impl Iterator<Item = &str> {
        (self.events.keys())
            .filter(move |(p, _)| *p == program)
            .map(|(_, kind)| kind.as_str())
    }

    /// Whether `line`, printed by `program`, is an event this catalogue describes: its
    /// kind is listed, and its fields are exactly the listed ones, each of its type.
    pub fn check(&self, program: Program, line: &Value) -> Result<(), String> {
        let object = line
            .as_object()
            .ok_or_else(|| format!("not an object: {line}"))?;
        let kind = (object.get("event").and_then(Value::as_str))
            .ok_or_else(|| format!("no event kind: {line}"))?;
        let fields = (self.events.get(&(program, kind.to_string())))
            .ok_or_else(|| format!("{program:?} event {kind:?} is not documented: {line}"))?;
        for (name, value) in object.iter().filter(|(name, _)| *name != "event") {
            let field = fields
                .get(name)
                .ok_or_else(|| format!("field {name:?} of {kind:?} is not documented: {line}"))?;
            if !(field.ty.holds(value) || field.nullable && value.is_null()) {
                return Err(format!(
                    "field {name:?} of {kind:?} is not {:?}: {line}",
                    field.ty
                ));
            }
        }
        match fields.keys().find(|name| !object.contains_key(*name)) {
            Some(missing) => Err(format!("{kind:?} lacks its field {missing:?}: {line}")),
            None => Ok(()),
        }
    }
}
