//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded to JSON.
//!
//! kubectl's generators (`kubectl create namespace`, `create configmap`, `create secret`,
//! `create service`, `create serviceaccount`, `create quota`, `create deployment`, `create job`,
//! `create role`, `create rolebinding`...) build typed objects and always send them as
//! protobuf; client-go falls back to JSON after a 415 only for CBOR, so a server that answers
//! protobuf with 415 breaks those commands. The devcluster stores JSON, so
//! it decodes what those commands send: the envelope (`runtime.Unknown` behind the `k8s\0`
//! magic) and, for the kinds listed in `KINDS`, the object, following the field numbers of the
//! kinds' `generated.proto` (k8s.io/api core/v1, apps/v1, batch/v1, rbac/v1; apimachinery
//! meta/v1).
//! The result goes through the same path as a JSON body (schema round-trip, validation), so
//! nothing downstream knows the difference.
//!
//! Why a schema table rather than generated code: the messages needed fit in a few screens,
//! and a table keeps one decoder for all of them. The table holds each message's fields that
//! kubectl's generators write plus the common ones next to them, not the whole API: any field
//! number the table does not know is refused (415 naming the message and field) rather than
//! dropped, so nothing sent is silently lost; so is any kind outside the table, with a message
//! saying to send JSON.
//!
//! JSON shape: Go's `encoding/json` of the decoded struct, which is what the real server
//! stores. gogo-protobuf writes every non-pointer field, empty or not, and pointer fields only
//! when set. Empty strings and zero times are left out (their JSON tags say `omitempty`), and
//! so are zero numbers and false booleans of the non-pointer `omitempty` fields the table marks
//! (`omitempty(..)`); other numbers, booleans and messages are kept (a pointer field set to
//! zero or to an empty struct means something: `replicas: 0`, `emptyDir: {}`, and Go writes
//! an empty non-pointer struct as `{}`: `status: {}`, `resources: {}`).

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
    /// `map<string, resource.Quantity>`: each value a message whose field 1 is the quantity's
    /// text (`500m`, `1Gi`), which is also its JSON.
    QuantityMap,
    /// `intstr.IntOrString` (type = 1: 0 int, 1 string; intVal = 2; strVal = 3): a number or
    /// a string in JSON, as its `MarshalJSON` writes it.
    IntOrString,
    Message(&'static Message),
}

#[derive(Debug)]
struct Field {
    number: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
    /// A non-pointer Go number or boolean tagged `omitempty`: gogo-protobuf writes it even
    /// when zero, and Go's JSON leaves it out then.
    omit_zero: bool,
}

/// A field Go's JSON writes whenever the wire carries it: strings (empty ones are left out
/// anyway), messages, and pointer or non-`omitempty` numbers and booleans.
const fn one(number: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        number,
        name,
        ty,
        repeated: false,
        omit_zero: false,
    }
}

const fn many(number: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        repeated: true,
        ..one(number, name, ty)
    }
}

/// A non-pointer `omitempty` number or boolean (`omit_zero`).
const fn omitempty(number: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        omit_zero: true,
        ..one(number, name, ty)
    }
}

#[derive(Debug)]
struct Message {
    name: &'static str,
    fields: &'static [Field],
}

use Ty::{Bool, BytesMap, Int, IntOrString, QuantityMap, String as Str, StringMap, Time};

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
        omitempty(7, "generation", Int),
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

static LABEL_SELECTOR_REQUIREMENT: Message = Message {
    name: "LabelSelectorRequirement",
    fields: &[
        one(1, "key", Str),
        one(2, "operator", Str),
        many(3, "values", Str),
    ],
};

static LABEL_SELECTOR: Message = Message {
    name: "LabelSelector",
    fields: &[
        one(1, "matchLabels", StringMap),
        many(
            2,
            "matchExpressions",
            Ty::Message(&LABEL_SELECTOR_REQUIREMENT),
        ),
    ],
};

static CONTAINER_PORT: Message = Message {
    name: "ContainerPort",
    fields: &[
        one(1, "name", Str),
        omitempty(2, "hostPort", Int),
        one(3, "containerPort", Int),
        one(4, "protocol", Str),
        one(5, "hostIP", Str),
    ],
};

static RESOURCE_REQUIREMENTS: Message = Message {
    name: "ResourceRequirements",
    fields: &[
        one(1, "limits", QuantityMap),
        one(2, "requests", QuantityMap),
    ],
};

static CONTAINER: Message = Message {
    name: "Container",
    fields: &[
        one(1, "name", Str),
        one(2, "image", Str),
        many(3, "command", Str),
        many(4, "args", Str),
        one(5, "workingDir", Str),
        many(6, "ports", Ty::Message(&CONTAINER_PORT)),
        one(8, "resources", Ty::Message(&RESOURCE_REQUIREMENTS)),
        one(13, "terminationMessagePath", Str),
        one(14, "imagePullPolicy", Str),
        omitempty(16, "stdin", Bool),
        omitempty(17, "stdinOnce", Bool),
        omitempty(18, "tty", Bool),
        one(20, "terminationMessagePolicy", Str),
        one(24, "restartPolicy", Str),
    ],
};

static POD_SPEC: Message = Message {
    name: "PodSpec",
    fields: &[
        many(2, "containers", Ty::Message(&CONTAINER)),
        one(3, "restartPolicy", Str),
        one(4, "terminationGracePeriodSeconds", Int),
        one(5, "activeDeadlineSeconds", Int),
        one(6, "dnsPolicy", Str),
        one(7, "nodeSelector", StringMap),
        one(8, "serviceAccountName", Str),
        one(9, "serviceAccount", Str),
        one(10, "nodeName", Str),
        omitempty(11, "hostNetwork", Bool),
        omitempty(12, "hostPID", Bool),
        omitempty(13, "hostIPC", Bool),
        many(15, "imagePullSecrets", Ty::Message(&LOCAL_OBJECT_REFERENCE)),
        one(16, "hostname", Str),
        one(17, "subdomain", Str),
        one(19, "schedulerName", Str),
        many(20, "initContainers", Ty::Message(&CONTAINER)),
        one(21, "automountServiceAccountToken", Bool),
        one(24, "priorityClassName", Str),
    ],
};

static POD_TEMPLATE_SPEC: Message = Message {
    name: "PodTemplateSpec",
    fields: &[
        one(1, "metadata", Ty::Message(&OBJECT_META)),
        one(2, "spec", Ty::Message(&POD_SPEC)),
    ],
};

static DEPLOYMENT_STRATEGY: Message = Message {
    name: "DeploymentStrategy",
    fields: &[one(1, "type", Str)],
};

static DEPLOYMENT_SPEC: Message = Message {
    name: "DeploymentSpec",
    fields: &[
        one(1, "replicas", Int),
        one(2, "selector", Ty::Message(&LABEL_SELECTOR)),
        one(3, "template", Ty::Message(&POD_TEMPLATE_SPEC)),
        one(4, "strategy", Ty::Message(&DEPLOYMENT_STRATEGY)),
        omitempty(5, "minReadySeconds", Int),
        one(6, "revisionHistoryLimit", Int),
        omitempty(7, "paused", Bool),
        one(9, "progressDeadlineSeconds", Int),
    ],
};

static DEPLOYMENT_CONDITION: Message = Message {
    name: "DeploymentCondition",
    fields: &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(4, "reason", Str),
        one(5, "message", Str),
        one(6, "lastUpdateTime", Time),
        one(7, "lastTransitionTime", Time),
    ],
};

static DEPLOYMENT_STATUS: Message = Message {
    name: "DeploymentStatus",
    fields: &[
        omitempty(1, "observedGeneration", Int),
        omitempty(2, "replicas", Int),
        omitempty(3, "updatedReplicas", Int),
        omitempty(4, "availableReplicas", Int),
        omitempty(5, "unavailableReplicas", Int),
        many(6, "conditions", Ty::Message(&DEPLOYMENT_CONDITION)),
        omitempty(7, "readyReplicas", Int),
        one(8, "collisionCount", Int),
    ],
};

static DEPLOYMENT: Message = Message {
    name: "Deployment",
    fields: &[
        one(1, "metadata", Ty::Message(&OBJECT_META)),
        one(2, "spec", Ty::Message(&DEPLOYMENT_SPEC)),
        one(3, "status", Ty::Message(&DEPLOYMENT_STATUS)),
    ],
};

static JOB_SPEC: Message = Message {
    name: "JobSpec",
    fields: &[
        one(1, "parallelism", Int),
        one(2, "completions", Int),
        one(3, "activeDeadlineSeconds", Int),
        one(4, "selector", Ty::Message(&LABEL_SELECTOR)),
        one(5, "manualSelector", Bool),
        one(6, "template", Ty::Message(&POD_TEMPLATE_SPEC)),
        one(7, "backoffLimit", Int),
        one(8, "ttlSecondsAfterFinished", Int),
        one(9, "completionMode", Str),
        one(10, "suspend", Bool),
    ],
};

static JOB_CONDITION: Message = Message {
    name: "JobCondition",
    fields: &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "lastProbeTime", Time),
        one(4, "lastTransitionTime", Time),
        one(5, "reason", Str),
        one(6, "message", Str),
    ],
};

static JOB_STATUS: Message = Message {
    name: "JobStatus",
    fields: &[
        many(1, "conditions", Ty::Message(&JOB_CONDITION)),
        one(2, "startTime", Time),
        one(3, "completionTime", Time),
        omitempty(4, "active", Int),
        omitempty(5, "succeeded", Int),
        omitempty(6, "failed", Int),
        one(7, "completedIndexes", Str),
        one(9, "ready", Int),
        one(11, "terminating", Int),
    ],
};

static JOB: Message = Message {
    name: "Job",
    fields: &[
        one(1, "metadata", Ty::Message(&OBJECT_META)),
        one(2, "spec", Ty::Message(&JOB_SPEC)),
        one(3, "status", Ty::Message(&JOB_STATUS)),
    ],
};

static INT_OR_STRING: Message = Message {
    name: "IntOrString",
    fields: &[
        one(1, "type", Int),
        one(2, "intVal", Int),
        one(3, "strVal", Str),
    ],
};

static SERVICE_PORT: Message = Message {
    name: "ServicePort",
    fields: &[
        one(1, "name", Str),
        one(2, "protocol", Str),
        one(3, "port", Int),
        one(4, "targetPort", IntOrString),
        omitempty(5, "nodePort", Int),
        one(6, "appProtocol", Str),
    ],
};

/// The fields `kubectl create service` and `kubectl expose` write; the newer pointer fields
/// (`ipFamilyPolicy`, `clusterIPs`, ...) are refused by number, not guessed.
static SERVICE_SPEC: Message = Message {
    name: "ServiceSpec",
    fields: &[
        many(1, "ports", Ty::Message(&SERVICE_PORT)),
        one(2, "selector", StringMap),
        one(3, "clusterIP", Str),
        one(4, "type", Str),
        many(5, "externalIPs", Str),
        one(7, "sessionAffinity", Str),
        one(8, "loadBalancerIP", Str),
        many(9, "loadBalancerSourceRanges", Str),
        one(10, "externalName", Str),
        one(11, "externalTrafficPolicy", Str),
        omitempty(12, "healthCheckNodePort", Int),
        omitempty(13, "publishNotReadyAddresses", Bool),
    ],
};

static LOAD_BALANCER_STATUS: Message = Message {
    name: "LoadBalancerStatus",
    fields: &[],
};

static SERVICE_STATUS: Message = Message {
    name: "ServiceStatus",
    fields: &[one(1, "loadBalancer", Ty::Message(&LOAD_BALANCER_STATUS))],
};

static SERVICE: Message = Message {
    name: "Service",
    fields: &[
        one(1, "metadata", Ty::Message(&OBJECT_META)),
        one(2, "spec", Ty::Message(&SERVICE_SPEC)),
        one(3, "status", Ty::Message(&SERVICE_STATUS)),
    ],
};

static SCOPED_RESOURCE_SELECTOR_REQUIREMENT: Message = Message {
    name: "ScopedResourceSelectorRequirement",
    fields: &[
        one(1, "scopeName", Str),
        one(2, "operator", Str),
        many(3, "values", Str),
    ],
};

static SCOPE_SELECTOR: Message = Message {
    name: "ScopeSelector",
    fields: &[many(
        1,
        "matchExpressions",
        Ty::Message(&SCOPED_RESOURCE_SELECTOR_REQUIREMENT),
    )],
};

static RESOURCE_QUOTA_SPEC: Message = Message {
    name: "ResourceQuotaSpec",
    fields: &[
        one(1, "hard", QuantityMap),
        many(2, "scopes", Str),
        one(3, "scopeSelector", Ty::Message(&SCOPE_SELECTOR)),
    ],
};

static RESOURCE_QUOTA_STATUS: Message = Message {
    name: "ResourceQuotaStatus",
    fields: &[one(1, "hard", QuantityMap), one(2, "used", QuantityMap)],
};

static RESOURCE_QUOTA: Message = Message {
    name: "ResourceQuota",
    fields: &[
        one(1, "metadata", Ty::Message(&OBJECT_META)),
        one(2, "spec", Ty::Message(&RESOURCE_QUOTA_SPEC)),
        one(3, "status", Ty::Message(&RESOURCE_QUOTA_STATUS)),
    ],
};

// rbac.authorization.k8s.io/v1 (k8s.io/api rbac/v1 generated.proto).

static POLICY_RULE: Message = Message {
    name: "PolicyRule",
    fields: &[
        many(1, "verbs", Str),
        many(2, "apiGroups", Str),
        many(3, "resources", Str),
        many(4, "resourceNames", Str),
        many(5, "nonResourceURLs", Str),
    ],
};

static AGGREGATION_RULE: Message = Message {
    name: "AggregationRule",
    fields: &[many(
        1,
        "clusterRoleSelectors",
        Ty::Message(&LABEL_SELECTOR),
    )],
};

static ROLE: Message = Message {
    name: "Role",
    fields: &[
        one(1, "metadata", Ty::Message(&OBJECT_META)),
        many(2, "rules", Ty::Message(&POLICY_RULE)),
    ],
};

static CLUSTER_ROLE: Message = Message {
    name: "ClusterRole",
    fields: &[
        one(1, "metadata", Ty::Message(&OBJECT_META)),
        many(2, "rules", Ty::Message(&POLICY_RULE)),
        one(3, "aggregationRule", Ty::Message(&AGGREGATION_RULE)),
    ],
};

static SUBJECT: Message = Message {
    name: "Subject",
    fields: &[
        one(1, "kind", Str),
        one(2, "apiGroup", Str),
        one(3, "name", Str),
        one(4, "namespace", Str),
    ],
};

static ROLE_REF: Message = Message {
    name: "RoleRef",
    fields: &[
        one(1, "apiGroup", Str),
        one(2, "kind", Str),
        one(3, "name", Str),
    ],
};

/// RoleBinding and ClusterRoleBinding share their fields.
static ROLE_BINDING: Message = Message {
    name: "RoleBinding",
    fields: &[
        one(1, "metadata", Ty::Message(&OBJECT_META)),
        many(2, "subjects", Ty::Message(&SUBJECT)),
        one(3, "roleRef", Ty::Message(&ROLE_REF)),
    ],
};

const RBAC: &str = "rbac.authorization.k8s.io/v1";

/// The kinds whose protobuf the devcluster decodes, by apiVersion and kind: those kubectl's
/// `create` generators send, but for the kinds of groups Trellis plugins rarely touch
/// (`cronjob`, `ingress`, `poddisruptionbudget`, `priorityclass`).
static KINDS: [(&str, &str, &Message); 12] = [
    ("v1", "Namespace", &NAMESPACE),
    ("v1", "Service", &SERVICE),
    ("v1", "ConfigMap", &CONFIG_MAP),
    ("v1", "Secret", &SECRET),
    ("v1", "ServiceAccount", &SERVICE_ACCOUNT),
    ("v1", "ResourceQuota", &RESOURCE_QUOTA),
    ("apps/v1", "Deployment", &DEPLOYMENT),
    ("batch/v1", "Job", &JOB),
    (RBAC, "Role", &ROLE),
    (RBAC, "ClusterRole", &CLUSTER_ROLE),
    (RBAC, "RoleBinding", &ROLE_BINDING),
    (RBAC, "ClusterRoleBinding", &ROLE_BINDING),
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
            (StringMap | BytesMap | QuantityMap, Some(Value::Array(entry))) => {
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
        (Int | Bool, Wire::Varint(0)) if field.omit_zero => None,
        (Int, Wire::Varint(v)) => Some(Value::from(v as i64)),
        (Bool, Wire::Varint(v)) => Some(Value::Bool(v != 0)),
        // Go's JSON leaves out an empty string field, but an empty element of a list is a
        // value: `apiGroups: [""]` is the core group, `args: ["-c", ""]` an empty argument.
        (Str, Wire::Bytes(b)) => {
            Some(Value::String(text(b)?)).filter(|v| field.repeated || v != "")
        }
        (Time, Wire::Bytes(b)) => time(b)?.map(Value::String),
        (StringMap | BytesMap | QuantityMap, Wire::Bytes(b)) => {
            let (mut key, mut value) = (String::new(), Vec::new());
            for (number, wire) in fields(b)? {
                match (number, wire) {
                    (1, Wire::Bytes(k)) => key = text(k)?,
                    (2, Wire::Bytes(v)) => value = v.to_vec(),
                    _ => return Err(mismatch()),
                }
            }
            let value = match field.ty {
                BytesMap => base64(&value),
                QuantityMap => quantity(&value).ok_or_else(|| {
                    DecodeError::Malformed(format!(
                        "{}.{}[{key}] is not a Quantity",
                        schema.name, field.name
                    ))
                })?,
                _ => text(&value)?,
            };
            Some(Value::Array(vec![Value::String(key), Value::String(value)]))
        }
        (IntOrString, Wire::Bytes(b)) => {
            let value = message(&INT_OR_STRING, b)?;
            Some(match value["type"].as_i64() {
                Some(1) => value.get("strVal").cloned().unwrap_or(Value::from("")),
                _ => value.get("intVal").cloned().unwrap_or(Value::from(0)),
            })
        }
        (Ty::Message(inner), Wire::Bytes(b)) => Some(message(inner, b)?),
        _ => return Err(mismatch()),
    })
}

/// `resource.Quantity` (string = 1): its text; `None` when the message is anything else.
fn quantity(bytes: &[u8]) -> Option<String> {
    let mut text = String::new();
    for (number, wire) in fields(bytes).ok()? {
        match (number, wire) {
            (1, Wire::Bytes(b)) => text = std::str::from_utf8(b).ok()?.to_string(),
            _ => return None,
        }
    }
    Some(text)
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
                "metadata": {"name": "y", "namespace": "x", "labels": {"app": "web"}},
                "data": {"a": "b", "c": "d"},
                "binaryData": {"bin": "AJ//"},
                "immutable": true,
            })
        );
    }

    #[test]
    fn empty_list_elements_are_kept_and_empty_strings_left_out() {
        let mut rule = Vec::new();
        bytes(1, b"get", &mut rule);
        bytes(2, b"", &mut rule); // the core group
        bytes(2, b"apps", &mut rule);
        bytes(3, b"pods", &mut rule);
        let mut role_ref = Vec::new();
        bytes(1, b"rbac.authorization.k8s.io", &mut role_ref);
        bytes(2, b"Role", &mut role_ref);
        bytes(3, b"reader", &mut role_ref);
        let mut raw = Vec::new();
        bytes(1, &metadata("reader", "x"), &mut raw);
        bytes(2, &rule, &mut raw);
        let role = decode(&envelope("rbac.authorization.k8s.io/v1", "Role", &raw)).unwrap();
        assert_eq!(
            role["rules"],
            json!([{"verbs": ["get"], "apiGroups": ["", "apps"], "resources": ["pods"]}])
        );
        let mut subject = Vec::new();
        bytes(1, b"ServiceAccount", &mut subject);
        bytes(2, b"", &mut subject);
        bytes(3, b"robot", &mut subject);
        bytes(4, b"x", &mut subject);
        let mut raw = Vec::new();
        bytes(1, &metadata("r", ""), &mut raw);
        bytes(2, &subject, &mut raw);
        bytes(3, &role_ref, &mut raw);
        let binding = decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            &raw,
        ))
        .unwrap();
        assert_eq!(binding["kind"], "ClusterRoleBinding");
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "robot", "namespace": "x"}])
        );
        assert_eq!(
            binding["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})
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

    fn unhex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// What kubectl 1.32 sends for `kubectl create deployment web --image=nginx:1.27
    /// --image=registry.example/tools/busybox --replicas=3 --port=8080` (captured from the
    /// wire by a server that recorded the POST body).
    const KUBECTL_DEPLOYMENT: &str = "
        6b3873000a150a07617070732f7631120a4465706c6f796d656e7412ff010a1f0a0377656212001a0022002a00320038
        0042005a0a0a03617070120377656212cd010803120c0a0a0a0361707012037765621ab2010a1c0a0012001a0022002a
        003200380042005a0a0a03617070120377656212910112340a056e67696e78120a6e67696e783a312e32372a00320b0a
        00100018903f22002a0042006a007200800100880100900100a20100123d0a0762757379626f78121e72656769737472
        792e6578616d706c652f746f6f6c732f62757379626f782a0042006a007200800100880100900100a201001a00320042
        004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a0022
        00";

    /// `kubectl create job once --image=busybox -- sh -c "echo hi"`, captured the same way.
    const KUBECTL_JOB: &str = "
        6b3873000a0f0a0862617463682f763112034a6f62128f010a140a046f6e636512001a0022002a00320038004200126d
        326b0a100a0012001a0022002a00320038004200125712340a046f6e6365120762757379626f781a0273681a022d631a
        076563686f2068692a0042006a007200800100880100900100a201001a054e65766572320042004a0052005800600068
        008201008a01009a0100c201001a082000280030003a001a002200";

    /// The expected JSON is kubectl's own `--dry-run=client -o json` for the same commands
    /// (Go's encoding of the same structs), less its `creationTimestamp: null`: zero times are
    /// left out, which the server reads the same way.
    #[test]
    fn kubectls_own_bodies_decode_to_its_dry_run_json() {
        let deployment = decode(&unhex(KUBECTL_DEPLOYMENT)).unwrap();
        assert_eq!(
            deployment,
            json!({
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "nginx",
                                    "image": "nginx:1.27",
                                    "ports": [{"containerPort": 8080}],
                                    "resources": {}
                                },
                                {
                                    "name": "busybox",
                                    "image": "registry.example/tools/busybox",
                                    "resources": {}
                                }
                            ]
                        }
                    },
                    "strategy": {}
                },
                "status": {}
            })
        );
        let job = decode(&unhex(KUBECTL_JOB)).unwrap();
        assert_eq!(
            job,
            json!({
                "kind": "Job",
                "apiVersion": "batch/v1",
                "metadata": {"name": "once"},
                "spec": {
                    "template": {
                        "metadata": {},
                        "spec": {
                            "containers": [
                                {
                                    "name": "once",
                                    "image": "busybox",
                                    "command": ["sh", "-c", "echo hi"],
                                    "resources": {}
                                }
                            ],
                            "restartPolicy": "Never"
                        }
                    }
                },
                "status": {}
            })
        );
    }

    /// A real body cut short is refused as malformed (400), never decoded into a partial
    /// object, and never panics; a cut object inside a well-formed envelope decodes only when
    /// the cut falls between the Deployment's own top-level fields.
    #[test]
    fn real_bodies_cut_short_are_refused() {
        let body = unhex(KUBECTL_DEPLOYMENT);
        // The magic (4 bytes) and TypeMeta (2 + 21), then the object: a 3-byte header and 255
        // bytes, then contentEncoding and contentType (2 bytes each).
        let object = 30..body.len() - 4;
        assert_eq!(object.len(), 255);
        for cut in object.clone() {
            let error = decode(&body[..cut]).unwrap_err();
            assert!(
                error.code == 400 && error.message.contains("bytes long"),
                "{cut}: {}",
                error.message
            );
        }
        let raw = &body[object];
        let decoded: Vec<usize> = (0..raw.len())
            .filter(
                |cut| match decode(&envelope("apps/v1", "Deployment", &raw[..*cut])) {
                    Ok(_) => true,
                    Err(error) => {
                        assert_eq!(error.code, 400, "{cut}: {}", error.message);
                        false
                    }
                },
            )
            .collect();
        // Nothing, metadata only, metadata and spec.
        assert_eq!(decoded, vec![0, 33, 33 + 3 + 205]);
    }

    fn quantity(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        bytes(1, text.as_bytes(), &mut out);
        out
    }

    /// A Deployment whose container has `extra` appended: requests and limits, a selector
    /// expression, and zeros of both kinds (`omitempty` ones left out, pointer ones kept).
    fn deployment(extra: &[u8]) -> Vec<u8> {
        let mut resources = Vec::new();
        bytes(1, &entry("memory", &quantity("1Gi")), &mut resources);
        bytes(2, &entry("cpu", &quantity("250m")), &mut resources);
        let mut port = Vec::new();
        bytes(1, b"", &mut port);
        int(2, 0, &mut port);
        int(3, 80, &mut port);
        bytes(4, b"UDP", &mut port);
        let mut container = Vec::new();
        bytes(1, b"app", &mut container);
        bytes(2, b"nginx", &mut container);
        bytes(6, &port, &mut container);
        bytes(8, &resources, &mut container);
        int(16, 0, &mut container);
        int(18, 1, &mut container);
        container.extend_from_slice(extra);
        let mut pod = Vec::new();
        bytes(2, &container, &mut pod);
        bytes(3, b"", &mut pod);
        int(11, 0, &mut pod);
        let mut template = Vec::new();
        bytes(1, &metadata("", ""), &mut template);
        bytes(2, &pod, &mut template);
        let mut requirement = Vec::new();
        bytes(1, b"tier", &mut requirement);
        bytes(2, b"In", &mut requirement);
        bytes(3, b"web", &mut requirement);
        bytes(3, b"api", &mut requirement);
        let mut selector = Vec::new();
        bytes(1, &entry("app", b"web"), &mut selector);
        bytes(2, &requirement, &mut selector);
        let mut spec = Vec::new();
        int(1, 0, &mut spec);
        bytes(2, &selector, &mut spec);
        bytes(3, &template, &mut spec);
        bytes(4, b"", &mut spec);
        int(5, 0, &mut spec);
        int(7, 0, &mut spec);
        let mut status = Vec::new();
        int(1, 0, &mut status);
        int(2, 0, &mut status);
        let mut raw = Vec::new();
        bytes(1, &metadata("web", "x"), &mut raw);
        bytes(2, &spec, &mut raw);
        bytes(3, &status, &mut raw);
        envelope("apps/v1", "Deployment", &raw)
    }

    #[test]
    fn a_deployment_decodes_zeros_quantities_and_selectors_as_go_writes_them() {
        let object = decode(&deployment(&[])).unwrap();
        assert_eq!(
            object,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "x", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 0,
                    "selector": {
                        "matchLabels": {"app": "web"},
                        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}],
                    },
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{
                            "name": "app", "image": "nginx",
                            "ports": [{"containerPort": 80, "protocol": "UDP"}],
                            "resources": {"limits": {"memory": "1Gi"}, "requests": {"cpu": "250m"}},
                            "tty": true,
                        }]},
                    },
                    "strategy": {},
                },
                "status": {},
            })
        );
    }

    #[test]
    fn a_field_the_table_lacks_deep_in_a_deployment_is_named() {
        let mut probe = Vec::new();
        bytes(10, b"", &mut probe); // livenessProbe
        let error = decode(&deployment(&probe)).unwrap_err();
        assert_eq!((error.code, error.reason), (415, "UnsupportedMediaType"));
        assert!(
            error
                .message
                .contains("protobuf field 10 of Container is not decoded"),
            "{}",
            error.message
        );

        let mut limits = Vec::new();
        bytes(1, &entry("cpu", &[0x10, 0x01]), &mut limits); // a varint, not a Quantity
        let mut resources = Vec::new();
        bytes(8, &limits, &mut resources);
        let error = decode(&deployment(&resources)).unwrap_err();
        assert_eq!(error.code, 400);
        assert!(
            error
                .message
                .contains("ResourceRequirements.limits[cpu] is not a Quantity"),
            "{}",
            error.message
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

        let error = decode(&envelope("batch/v1", "CronJob", b"")).unwrap_err();
        assert_eq!((error.code, error.reason), (415, "UnsupportedMediaType"));
        assert!(
            error.message.contains("protobuf batch/v1 CronJob:")
                && error.message.contains("apps/v1 Deployment")
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
