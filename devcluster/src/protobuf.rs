//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded to JSON.
//!
//! kubectl's generators (`kubectl create namespace`, `create configmap`, `create secret`,
//! `create serviceaccount`...) build typed objects and always send them as protobuf; client-go
//! falls back to JSON after a 415 only for CBOR, so a server that answers protobuf with 415
//! breaks those commands. The devcluster stores JSON, so it decodes what those commands send:
//! the envelope (`runtime.Unknown` behind the `k8s\0` magic) and, for the kinds listed in
//! `KINDS`, the object, following the field numbers of the kinds' `generated.proto`. The
//! result goes through the same path as a JSON body (schema round-trip, validation), so nothing
//! downstream knows the difference.
//!
//! Why a schema table rather than generated code: the handful of messages needed fit in one
//! screen, and a table keeps one decoder for all of them. Any field number the table does not
//! know is refused (415 naming the message and field) rather than dropped, so nothing sent is
//! silently lost; so is any kind outside the table, with a message saying to send JSON.
//!
//! JSON shape: Go's `encoding/json` of the decoded struct, which is what the real server
//! stores. gogo-protobuf writes every non-pointer field, empty or not; empty strings and zero
//! times are left out (their JSON tags say `omitempty`), numbers, booleans and messages are kept
//! (a pointer field set to zero or to an empty struct means something: `replicas: 0`,
//! `emptyDir: {}`).

use base64::Engine;
use serde_json::{Map, Value};

use crate::status::ApiError;

/// The media type, as `Content-Type` carries it.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Every protobuf body starts with these bytes (apimachinery's `protoEncodingPrefix`).
const MAGIC: [u8; 4] = [0x6b, 0x38, 0x73, 0x00];

#[derive(Debug, Clone, Copy)]
enum Ty {
    String,
    /// Any varint integer (int32, int64): two's complement, so negative values decode too.
    Int,
    Bool,
    /// `meta.v1.Time`: seconds and nanos, RFC 3339 in JSON (second precision, as `Time`
    /// marshals).
    Time,
    StringMap,
    /// `map<string, bytes>`: values base64 in JSON, as Go encodes `[]byte`.
    BytesMap,
    Message(&'static Message),
}

#[derive(Debug)]
struct Field {
    number: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
}

const fn one(number: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        number,
        name,
        ty,
        repeated: false,
    }
}

const fn many(number: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        number,
        name,
        ty,
        repeated: true,
    }
}

#[derive(Debug)]
struct Message {
    name: &'static str,
    fields: &'static [Field],
}

use Ty::{Bool, BytesMap, Int, String as Str, StringMap, Time};

static TYPE_META: Message = Message {
    name: "TypeMeta",
    fields: &[one(1, "apiVersion", Str), one(2, "kind", Str)],
};

static OWNER_REFERENCE: Message = Message {
    name: "OwnerReference",
    fields: &[
        one(1, "kind", Str),
        one(3, "name", Str),
        one(4, "uid", Str),
        one(5, "apiVersion", Str),
        one(6, "controller", Bool),
        one(7, "blockOwnerDeletion", Bool),
    ],
};

static OBJECT_META: Message = Message {
    name: "ObjectMeta",
    fields: &[
        one(1, "name", Str),
        one(2, "generateName", Str),
        one(3, "namespace", Str),
        one(4, "selfLink", Str),
        one(5, "uid", Str),
        one(6, "resourceVersion", Str),
        one(7, "generation", Int),
        one(8, "creationTimestamp", Time),
        one(9, "deletionTimestamp", Time),
        one(10, "deletionGracePeriodSeconds", Int),
        one(11, "labels", StringMap),
        one(12, "annotations", StringMap),
        many(13, "ownerReferences", Ty::Message(&OWNER_REFERENCE)),
        many(14, "finalizers", Str),
    ],
};

static NAMESPACE_SPEC: Message = Message {
    name: "NamespaceSpec",
    fields: &[many(1, "finalizers", Str)],
};

static NAMESPACE_CONDITION: Message = Message {
    name: "NamespaceCondition",
    fields: &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(4, "lastTransitionTime", Time),
        one(5, "reason", Str),
        one(6, "message", Str),
    ],
};

static NAMESPACE_STATUS: Message = Message {
    name: "NamespaceStatus",
    fields: &[
        one(1, "phase", Str),
        many(2, "conditions", Ty::Message(&NAMESPACE_CONDITION)),
    ],
};

static NAMESPACE: Message = Message {
    name: "Namespace",
    fields: &[
        one(1, "metadata", Ty::Message(&OBJECT_META)),
        one(2, "spec", Ty::Message(&NAMESPACE_SPEC)),
        one(3, "status", Ty::Message(&NAMESPACE_STATUS)),
    ],
};

static CONFIG_MAP: Message = Message {
    name: "ConfigMap",
    fields: &[
        one(1, "metadata", Ty::Message(&OBJECT_META)),
        one(2, "data", StringMap),
        one(3, "binaryData", BytesMap),
        one(4, "immutable", Bool),
    ],
};

static SECRET: Message = Message {
    name: "Secret",
    fields: &[
        one(1, "metadata", Ty::Message(&OBJECT_META)),
        one(2, "data", BytesMap),
        one(3, "type", Str),
        one(4, "stringData", StringMap),
        one(5, "immutable", Bool),
    ],
};

static OBJECT_REFERENCE: Message = Message {
    name: "ObjectReference",
    fields: &[
        one(1, "kind", Str),
        one(2, "namespace", Str),
        one(3, "name", Str),
        one(4, "uid", Str),
        one(5, "apiVersion", Str),
        one(6, "resourceVersion", Str),
        one(7, "fieldPath", Str),
    ],
};

static LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "LocalObjectReference",
    fields: &[one(1, "name", Str)],
};

static SERVICE_ACCOUNT: Message = Message {
    name: "ServiceAccount",
    fields: &[
        one(1, "metadata", Ty::Message(&OBJECT_META)),
        many(2, "secrets", Ty::Message(&OBJECT_REFERENCE)),
        many(3, "imagePullSecrets", Ty::Message(&LOCAL_OBJECT_REFERENCE)),
        one(4, "automountServiceAccountToken", Bool),
    ],
};

/// The kinds whose protobuf the devcluster decodes, by apiVersion and kind.
static KINDS: [(&str, &str, &Message); 4] = [
    ("v1", "Namespace", &NAMESPACE),
    ("v1", "ConfigMap", &CONFIG_MAP),
    ("v1", "Secret", &SECRET),
    ("v1", "ServiceAccount", &SERVICE_ACCOUNT),
];

/// Why a body could not be decoded. `Malformed` is the client's fault (400); `Unsupported`
/// is a gap in the table (415).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum DecodeError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Unsupported(String),
}

/// Decodes a protobuf body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let Some(envelope) = body.strip_prefix(&MAGIC) else {
        return Err(ApiError::bad_request(format!(
            "provided data does not appear to be a protobuf message, expected prefix {MAGIC:?}"
        )));
    };
    // `runtime.Unknown`: typeMeta = 1, raw = 2, contentEncoding = 3, contentType = 4.
    let malformed = |e: DecodeError| {
        ApiError::bad_request(format!("unable to decode the protobuf envelope: {e}"))
    };
    let (mut type_meta, mut raw, mut encoding) = (Value::Null, &[][..], String::new());
    for (number, wire) in fields(envelope).map_err(malformed)? {
        match (number, wire) {
            (1, Wire::Bytes(b)) => type_meta = message(&TYPE_META, b).map_err(malformed)?,
            (2, Wire::Bytes(b)) => raw = b,
            (3, Wire::Bytes(b)) => encoding = String::from_utf8_lossy(b).into_owned(),
            (4, Wire::Bytes(_)) => {}
            (number, _) => {
                return Err(malformed(DecodeError::Malformed(format!(
                    "unexpected field {number}"
                ))));
            }
        }
    }
    let text = |key: &str| type_meta[key].as_str().unwrap_or("").to_string();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if !encoding.is_empty() {
        return Err(unsupported(&format!(
            "content encoding {encoding:?} of a protobuf body"
        )));
    }
    let Some((_, _, schema)) = KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
    else {
        let known: Vec<String> = KINDS.iter().map(|(v, k, _)| format!("{v} {k}")).collect();
        return Err(unsupported(&format!(
            "protobuf {api_version} {kind}: the devcluster decodes protobuf only for {}; send it as JSON (kubectl create ... --dry-run=client -o yaml | kubectl apply --server-side -f -)",
            known.join(", ")
        )));
    };
    let mut object = message(schema, raw).map_err(|e| match e {
        DecodeError::Malformed(detail) => ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {detail}",
            crate::registry::split_api_version(&api_version).1
        )),
        DecodeError::Unsupported(detail) => unsupported(&detail),
    })?;
    let map = object
        .as_object_mut()
        .ok_or_else(|| ApiError::internal("decoded protobuf is not an object"))?;
    map.insert("apiVersion".to_string(), Value::String(api_version));
    map.insert("kind".to_string(), Value::String(kind));
    Ok(object)
}

fn unsupported(detail: &str) -> ApiError {
    let mut error = ApiError::unsupported_media_type(detail, &crate::http::BODY_MEDIA_TYPES);
    error.message = format!("{}: {detail}", error.message);
    error
}

/// Reads a varint at `*at`, advancing it.
fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes
            .get(*at)
            .ok_or_else(|| DecodeError::Malformed("unexpected end of data in a varint".into()))?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(DecodeError::Malformed("varint longer than 10 bytes".into()))
}

/// One field as it appears on the wire.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Splits a message into (field number, value) pairs, in wire order.
fn fields(bytes: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, DecodeError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let (number, wire_type) = (key >> 3, key & 7);
        let value = match wire_type {
            0 => Wire::Varint(varint(bytes, &mut at)?),
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)?).unwrap_or(usize::MAX);
                let end = at
                    .checked_add(len)
                    .filter(|end| *end <= bytes.len())
                    .ok_or_else(|| {
                        DecodeError::Malformed(format!(
                            "field {number} is {len} bytes long but only {} remain",
                            bytes.len() - at
                        ))
                    })?;
                let slice = &bytes[at..end];
                at = end;
                Wire::Bytes(slice)
            }
            other => {
                return Err(DecodeError::Malformed(format!(
                    "field {number} has wire type {other}, which no Kubernetes field this server decodes uses"
                )));
            }
        };
        out.push((number, value));
    }
    Ok(out)
}

fn message(schema: &Message, bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut object = Map::new();
    for (number, wire) in fields(bytes)? {
        let Some(field) = schema.fields.iter().find(|f| f.number == number) else {
            return Err(DecodeError::Unsupported(format!(
                "protobuf field {number} of {} is not decoded by the devcluster",
                schema.name
            )));
        };
        let value = scalar(schema, field, wire)?;
        match (field.ty, value) {
            (_, None) => {}
            (StringMap | BytesMap, Some(Value::Array(entry))) => {
                let entries = object
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let (Some(map), [Value::String(key), value]) =
                    (entries.as_object_mut(), entry.as_slice())
                {
                    map.insert(key.clone(), value.clone());
                }
            }
            (_, Some(value)) if field.repeated => {
                if let Value::Array(items) = object
                    .entry(field.name)
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    items.push(value);
                }
            }
            (_, Some(value)) => {
                object.insert(field.name.to_string(), value);
            }
        }
    }
    Ok(Value::Object(object))
}

/// The JSON value of one wire field (a `[key, value]` pair for map entries); `None` for what
/// Go's JSON would leave out.
fn scalar(schema: &Message, field: &Field, wire: Wire<'_>) -> Result<Option<Value>, DecodeError> {
    let mismatch = || {
        DecodeError::Malformed(format!(
            "field {} ({}.{}) has the wrong wire type",
            field.number, schema.name, field.name
        ))
    };
    let text = |bytes: &[u8]| {
        std::str::from_utf8(bytes).map(str::to_string).map_err(|_| {
            DecodeError::Malformed(format!("{}.{} is not valid UTF-8", schema.name, field.name))
        })
    };
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok(match (field.ty, wire) {
        (Int, Wire::Varint(v)) => Some(Value::from(v as i64)),
        (Bool, Wire::Varint(v)) => Some(Value::Bool(v != 0)),
        (Str, Wire::Bytes(b)) => Some(Value::String(text(b)?)).filter(|v| v != ""),
        (Time, Wire::Bytes(b)) => time(b)?.map(Value::String),
        (StringMap | BytesMap, Wire::Bytes(b)) => {
            let (mut key, mut value) = (String::new(), Vec::new());
            for (number, wire) in fields(b)? {
                match (number, wire) {
                    (1, Wire::Bytes(k)) => key = text(k)?,
                    (2, Wire::Bytes(v)) => value = v.to_vec(),
                    _ => return Err(mismatch()),
                }
            }
            let value = match field.ty {
                BytesMap => Value::String(base64(&value)),
                _ => Value::String(text(&value)?),
            };
            Some(Value::Array(vec![Value::String(key), value]))
        }
        (Ty::Message(inner), Wire::Bytes(b)) => Some(message(inner, b)?),
        _ => return Err(mismatch()),
    })
}

/// `meta.v1.Time` (seconds = 1, nanos = 2) as RFC 3339; the zero time is left out, as Go's
/// JSON writes it as null.
fn time(bytes: &[u8]) -> Result<Option<String>, DecodeError> {
    let mut seconds = 0i64;
    for (number, wire) in fields(bytes)? {
        match (number, wire) {
            (1, Wire::Varint(v)) => seconds = v as i64,
            (2, Wire::Varint(_)) => {} // Time marshals to whole seconds.
            _ => return Err(DecodeError::Malformed("malformed Time".into())),
        }
    }
    if seconds == 0 {
        return Ok(None);
    }
    let timestamp = k8s_openapi::jiff::Timestamp::from_second(seconds)
        .map_err(|e| DecodeError::Malformed(format!("Time out of range: {e}")))?;
    Ok(Some(timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A protobuf encoder for the tests: key + varint, or key + length + bytes.
    fn key(number: u64, wire_type: u64, out: &mut Vec<u8>) {
        put_varint((number << 3) | wire_type, out);
    }

    fn put_varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn bytes(number: u64, value: &[u8], out: &mut Vec<u8>) {
        key(number, 2, out);
        put_varint(value.len() as u64, out);
        out.extend_from_slice(value);
    }

    fn int(number: u64, value: u64, out: &mut Vec<u8>) {
        key(number, 0, out);
        put_varint(value, out);
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        bytes(1, k.as_bytes(), &mut out);
        bytes(2, v, &mut out);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes(1, api_version.as_bytes(), &mut type_meta);
        bytes(2, kind.as_bytes(), &mut type_meta);
        let mut out = MAGIC.to_vec();
        bytes(1, &type_meta, &mut out);
        bytes(2, raw, &mut out);
        bytes(3, b"", &mut out);
        bytes(4, b"", &mut out);
        out
    }

    /// ObjectMeta as gogo-protobuf writes it: every non-pointer field, empty or not.
    fn metadata(name: &str, namespace: &str) -> Vec<u8> {
        let mut out = Vec::new();
        bytes(1, name.as_bytes(), &mut out);
        bytes(2, b"", &mut out);
        bytes(3, namespace.as_bytes(), &mut out);
        bytes(4, b"", &mut out);
        bytes(5, b"", &mut out);
        bytes(6, b"", &mut out);
        int(7, 0, &mut out);
        bytes(8, b"", &mut out);
        bytes(11, &entry("app", b"web"), &mut out);
        out
    }

    #[test]
    fn a_configmap_decodes_to_the_json_go_would_write() {
        let mut raw = Vec::new();
        bytes(1, &metadata("y", "x"), &mut raw);
        bytes(2, &entry("a", b"b"), &mut raw);
        bytes(2, &entry("c", b"d"), &mut raw);
        bytes(3, &entry("bin", &[0, 159, 255]), &mut raw);
        int(4, 1, &mut raw);
        let object = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            object,
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "y", "namespace": "x", "generation": 0, "labels": {"app": "web"}},
                "data": {"a": "b", "c": "d"},
                "binaryData": {"bin": "AJ//"},
                "immutable": true,
            })
        );
    }

    #[test]
    fn times_owner_references_and_finalizers_decode() {
        let mut time = Vec::new();
        int(1, 1_700_000_000, &mut time);
        int(2, 5, &mut time);
        let mut owner = Vec::new();
        bytes(1, b"ReplicaSet", &mut owner);
        bytes(3, b"web-1", &mut owner);
        int(6, 1, &mut owner);
        let mut meta = metadata("n", "");
        bytes(9, &time, &mut meta);
        bytes(13, &owner, &mut meta);
        bytes(14, b"a/b", &mut meta);
        bytes(14, b"c/d", &mut meta);
        let mut spec = Vec::new();
        bytes(1, b"kubernetes", &mut spec);
        let mut raw = Vec::new();
        bytes(1, &meta, &mut raw);
        bytes(2, &spec, &mut raw);
        let object = decode(&envelope("v1", "Namespace", &raw)).unwrap();
        assert_eq!(
            object["metadata"]["deletionTimestamp"],
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            object["metadata"]["ownerReferences"],
            json!([{"kind": "ReplicaSet", "name": "web-1", "controller": true}])
        );
        assert_eq!(object["metadata"]["finalizers"], json!(["a/b", "c/d"]));
        assert_eq!(object["spec"]["finalizers"], json!(["kubernetes"]));
        assert!(
            object["metadata"].get("creationTimestamp").is_none(),
            "zero time left out"
        );
        assert!(
            object["metadata"].get("namespace").is_none(),
            "empty string left out"
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_what_is_wrong() {
        let error = decode(b"{\"kind\":\"ConfigMap\"}").unwrap_err();
        assert_eq!(error.code, 400);
        assert!(
            error
                .message
                .contains("does not appear to be a protobuf message"),
            "{}",
            error.message
        );

        let mut raw = Vec::new();
        bytes(1, &metadata("y", "x"), &mut raw);
        let mut truncated = envelope("v1", "ConfigMap", &raw);
        truncated.truncate(truncated.len() - 12);
        let error = decode(&truncated).unwrap_err();
        assert_eq!(error.code, 400);
        assert!(error.message.contains("bytes long"), "{}", error.message);

        let mut bad_field = Vec::new();
        int(1, 5, &mut bad_field); // metadata must be a message
        let error = decode(&envelope("v1", "ConfigMap", &bad_field)).unwrap_err();
        assert_eq!(
            (error.code, error.message.as_str()),
            (
                400,
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: field 1 (ConfigMap.metadata) has the wrong wire type"
            )
        );

        let error = decode(&envelope("apps/v1", "Deployment", b"")).unwrap_err();
        assert_eq!((error.code, error.reason), (415, "UnsupportedMediaType"));
        assert!(
            error.message.contains("apps/v1 Deployment")
                && error.message.contains("v1 ConfigMap")
                && error.message.contains("as JSON"),
            "{}",
            error.message
        );

        let mut unknown_field = Vec::new();
        bytes(1, &metadata("y", "x"), &mut unknown_field);
        int(9, 1, &mut unknown_field);
        let error = decode(&envelope("v1", "Secret", &unknown_field)).unwrap_err();
        assert_eq!(error.code, 415);
        assert!(
            error
                .message
                .contains("protobuf field 9 of Secret is not decoded"),
            "{}",
            error.message
        );
    }
}
