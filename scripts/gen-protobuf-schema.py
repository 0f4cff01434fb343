#!/usr/bin/env python3
"""Generates crates/localkube/src/protobuf_schema.rs: the protobuf message table that
crates/localkube/src/protobuf.rs uses to turn Kubernetes protobuf bodies into JSON.

Inputs (read once, from the local cargo registry):
  * k8s-pb 0.9 (prost structs: message names, field tags, wire types, nesting),
  * k8s-openapi 0.29 (JSON property names and which properties are required),
  * POINTER_FIELDS below: Go fields that are pointers to scalars, so that a present zero
    value must survive (everything else optional and scalar is `omitempty` in Go).

Usage (from the repository root):
  python3 scripts/gen-protobuf-schema.py crates/localkube/src/protobuf_schema.rs
It needs both crates' sources in ~/.cargo/registry and rustfmt on PATH. k8s-openapi is there
after any build of this workspace; fetch k8s-pb (not a dependency) once with:
  d=$(mktemp -d) && cargo init -q "$d" && cargo add -q --manifest-path "$d/Cargo.toml" k8s-pb@0.9.0 && cargo fetch -q --manifest-path "$d/Cargo.toml"
"""
import glob
import os
import re
import subprocess
import sys

REGISTRY = os.path.expanduser("~/.cargo/registry/src")


def find_crate(name):
    hits = sorted(glob.glob(os.path.join(REGISTRY, "*", name)))
    if not hits:
        sys.exit(f"crate {name} not found under {REGISTRY}")
    return hits[-1]


PB_ROOT = os.path.join(find_crate("k8s-pb-0.9.0"), "src")
OPENAPI_ROOT = os.path.join(find_crate("k8s-openapi-0.29.0"), "src")

# apiVersion -> k8s-pb module path. These are the groups localkube serves, plus meta.k8s.io
# (DeleteOptions & co). Every message of these modules is included, and whatever they
# reference, transitively.
API_GROUPS = [
    ("v1", "api/core/v1"),
    ("apps/v1", "api/apps/v1"),
    ("coordination.k8s.io/v1", "api/coordination/v1"),
    ("events.k8s.io/v1", "api/events/v1"),
    ("policy/v1", "api/policy/v1"),
    ("rbac.authorization.k8s.io/v1", "api/rbac/v1"),
    ("authorization.k8s.io/v1", "api/authorization/v1"),
    ("apiextensions.k8s.io/v1", "apiextensions_apiserver/pkg/apis/apiextensions/v1"),
    ("meta.k8s.io/v1", "apimachinery/pkg/apis/meta/v1"),
]

# Messages whose JSON form is not an object of their fields (see protobuf.rs `Special`).
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Timestamp": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Verbs": "StringList",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": "Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawJson",
    "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON": "RawJson",
    "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray": "SchemaOrArray",
    "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool": "SchemaOrBool",
    "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray": "SchemaOrStringArray",
}

SCALARS = {
    "string": "Str", "bytes": "Bytes", "bool": "Bool", "int32": "I32", "int64": "I64",
    "uint32": "U32", "uint64": "U64", "sint32": "S32", "sint64": "S64", "float": "F32",
    "double": "F64", "fixed32": "Fx32", "fixed64": "Fx64", "sfixed32": "SFx32",
    "sfixed64": "SFx64",
}


def proto_package(module):
    return "k8s.io." + module.replace("/", ".")


def norm(name):
    """Key for matching names across naming conventions: lower case, letters and digits."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


# ---------------------------------------------------------------------------------------
# k8s-pb: prost structs
# ---------------------------------------------------------------------------------------

STRUCT_RE = re.compile(r"^pub struct (\w+) \{(\})?\s*$")
ATTR_RE = re.compile(r"^\s*#\[prost\((.*)\)\]\s*$")
FIELD_RE = re.compile(r"^pub (?:r#)?(\w+):\s*(.*),$")
TAG_RE = re.compile(r'tag\s*=\s*"(\d+)"')


class PbField:
    def __init__(self, name, tag, kind, label, type_path, map_key=None):
        self.name = name          # prost (snake case) field name
        self.tag = tag
        self.kind = kind          # scalar kind name, or "message"
        self.label = label        # "single", "repeated" or "map"
        self.type_path = type_path  # resolved full message name, for kind == "message"
        self.map_key = map_key


_module_cache = {}


def parse_module(module):
    """Returns {prost struct name: [PbField]} for one k8s-pb module (e.g. "api/core/v1")."""
    if module in _module_cache:
        return _module_cache[module]
    path = os.path.join(PB_ROOT, module, "mod.rs")
    structs = {}
    current = None
    attr = None
    pending = ""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            m = STRUCT_RE.match(line)
            if m:
                current = m.group(1)
                structs[current] = []
                if m.group(2):
                    current = None
                continue
            if current is None:
                continue
            if line.startswith("}"):
                current = None
                continue
            m = ATTR_RE.match(line)
            if m:
                attr = m.group(1)
                pending = ""
                continue
            if attr is None:
                continue
            # rustfmt may wrap a long field declaration over several lines.
            pending = (pending + " " + line.strip()).strip()
            if not pending.endswith(",") or pending.count("<") != pending.count(">"):
                continue
            m = FIELD_RE.match(pending)
            if not m:
                sys.exit(f"{module}::{current}: cannot parse field {pending!r}")
            structs[current].append(make_field(module, m.group(1), m.group(2), attr))
            attr = None
    _module_cache[module] = structs
    return structs


def resolve_type(module, rust_type):
    """Maps a prost field type to the full proto name of the message it holds."""
    t = re.sub(r"\s+", "", rust_type).replace(",>", ">")
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<",
                    "::prost::alloc::boxed::Box<"):
        while t.startswith(wrapper):
            t = t[len(wrapper):-1]
    if t.startswith("::prost::alloc::collections::BTreeMap<"):
        t = t[len("::prost::alloc::collections::BTreeMap<"):-1]
        t = t.split(",", 1)[1].strip()
    parts = module.split("/")
    segs = t.split("::")
    while segs and segs[0] == "super":
        parts = parts[:-1]
        segs = segs[1:]
    return ("/".join(parts + segs[:-1]), segs[-1])


def make_field(module, name, rust_type, attr):
    tag = int(TAG_RE.search(attr).group(1))
    head = attr.split(",")[0].strip()
    if head.startswith("btree_map") or head.startswith("map") or head.startswith("hash_map"):
        kinds = re.search(r'"\s*(\w+)\s*,\s*(\w+)\s*"', attr)
        key, value = kinds.group(1), kinds.group(2)
        if key != "string":
            sys.exit(f"{module}: map with {key} keys is not supported")
        if value == "message":
            return PbField(name, tag, "message", "map", resolve_type(module, rust_type), key)
        return PbField(name, tag, value, "map", None, key)
    kind = head.split("=")[0].strip()
    label = "repeated" if re.search(r"\brepeated\b", attr) else "single"
    if kind == "message":
        return PbField(name, tag, "message", label, resolve_type(module, rust_type))
    if kind not in SCALARS:
        sys.exit(f"{module}.{name}: prost kind {kind} is not supported")
    return PbField(name, tag, kind, label, None)


# ---------------------------------------------------------------------------------------
# k8s-openapi: JSON property names and required properties
# ---------------------------------------------------------------------------------------

# The Kubernetes minor version localkube implements (KUBE_VERSION): its schemas decide which
# properties are required.
OPENAPI_VERSION = 33

OA_NAME_RE = re.compile(r"^pub (?:struct|enum) (\w+)")
OA_FIELD_RE = re.compile(r"^    pub (\w+): (.*),\s*$")
OA_KEY_RE = re.compile(r'^\s*"([^"]+)" => Field::Key_(\w+),\s*$')

_openapi_cache = {}


def parse_openapi_module(module):
    """{norm(type name): (type name, {norm(json): (json name, required)})}, merged over every
    Kubernetes version k8s-openapi carries: up to OPENAPI_VERSION newer versions win, after it
    they only add what is missing (fields newer than the version localkube reports)."""
    if module in _openapi_cache:
        return _openapi_cache[module]
    types = {}
    for version_dir in sorted(glob.glob(os.path.join(OPENAPI_ROOT, "v1_*")),
                              key=lambda p: int(p.rsplit("_", 1)[1])):
        newer = int(version_dir.rsplit("_", 1)[1]) > OPENAPI_VERSION
        for path in sorted(glob.glob(os.path.join(version_dir, module, "*.rs"))):
            if path.endswith("mod.rs"):
                continue
            parse_openapi_file(path, types, newer)
    _openapi_cache[module] = types
    return types


def parse_openapi_file(path, types, newer):
    name = None
    fields = {}
    keys = []
    in_struct = False
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            m = OA_NAME_RE.match(line)
            if m and name is None:
                name = m.group(1)
                in_struct = line.rstrip().endswith("{") and line.startswith("pub struct")
                continue
            if in_struct:
                if line.startswith("}"):
                    in_struct = False
                    continue
                m = OA_FIELD_RE.match(line)
                if m:
                    fields[m.group(1)] = m.group(2)
                continue
            m = OA_KEY_RE.match(line)
            if m:
                keys.append((m.group(1), m.group(2)))
    if name is None:
        return
    props = {}
    for json_name, key in keys:
        rust_type = fields.get(key)
        if rust_type is None:
            continue  # apiVersion / kind of resources: constants, not fields
        props[norm(json_name)] = (json_name, not rust_type.startswith("Option<"))
    entry = types.setdefault(norm(name), (name, {}))
    merged = {**props, **entry[1]} if newer else {**entry[1], **props}
    types[norm(name)] = (entry[0], merged)


def openapi_type(module, prost_name):
    return parse_openapi_module(module).get(norm(prost_name))


def openapi_names(module):
    """{norm(json): json name} over every type of a module, for types without a schema of
    their own (lists, EphemeralContainerCommon, ...); ambiguous spellings are left out."""
    names = {}
    for _, props in parse_openapi_module(module).values():
        for key, (json_name, _) in props.items():
            names.setdefault(key, set()).add(json_name)
    return {k: v.pop() for k, v in names.items() if len(v) == 1}


# ---------------------------------------------------------------------------------------
# Go pointer fields
# ---------------------------------------------------------------------------------------

POINTER_PACKAGES = {
    "core": "api/core/v1",
    "apps": "api/apps/v1",
    "coordination": "api/coordination/v1",
    "events": "api/events/v1",
    "policy": "api/policy/v1",
    "rbac": "api/rbac/v1",
    "apiextensions": "apiextensions_apiserver/pkg/apis/apiextensions/v1",
    "meta": "apimachinery/pkg/apis/meta/v1",
}


def pointer_fields():
    """{(module, norm(struct)): {norm(field)}} from POINTER_FIELDS."""
    out = {}
    for line in POINTER_FIELDS.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        pkg, dotted = line.split()
        struct, field = dotted.split(".")
        out.setdefault((POINTER_PACKAGES[pkg], norm(struct)), set()).add(norm(field))
    return out


# ---------------------------------------------------------------------------------------
# Building the table
# ---------------------------------------------------------------------------------------

def lower_camel(snake):
    parts = snake.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


class Message:
    def __init__(self, module, prost_name):
        self.module = module
        self.prost_name = prost_name
        oa = openapi_type(module, prost_name)
        self.name = oa[0] if oa else prost_name
        self.full = proto_package(module) + "." + self.name
        self.props = oa[1] if oa else None
        self.fields = parse_module(module)[prost_name]
        self.special = SPECIAL.get(self.full, "None")


def collect(warnings):
    """Every message of the API_GROUPS modules plus what they reference, keyed by
    (module, prost name)."""
    todo = []
    for _, module in API_GROUPS:
        todo.extend((module, name) for name in parse_module(module))
    messages = {}
    while todo:
        key = todo.pop()
        if key in messages:
            continue
        module, name = key
        if name not in parse_module(module):
            sys.exit(f"unresolved message {module}::{name}")
        msg = Message(module, name)
        messages[key] = msg
        for f in msg.fields:
            if f.kind == "message":
                todo.append(f.type_path)
    return messages


# JSON names that neither the OpenAPI schemas nor lowerCamelCase get right.
JSON_NAME_OVERRIDES = {
    ("k8s.io.api.core.v1.PodLogOptions", "insecure_skip_tls_verify_backend"):
        "insecureSkipTLSVerifyBackend",
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.ConversionRequest",
     "desired_api_version"): "desiredAPIVersion",
}


def json_field(msg, f, messages, pointers, warnings):
    """(json name, card) for one field of a message."""
    name, card = json_field_guess(msg, f, messages, pointers, warnings)
    return JSON_NAME_OVERRIDES.get((msg.full, f.name), name), card


def json_field_guess(msg, f, messages, pointers, warnings):
    if f.label == "repeated":
        card = "Rep"
    elif f.label == "map":
        card = "Map"
    elif f.kind == "message":
        card = "Keep"
    elif norm(f.name) in pointers.get((msg.module, norm(msg.prost_name)), set()):
        card = "Keep"
    else:
        card = "Opt"
    if msg.props is None:
        known = openapi_names(msg.module).get(norm(f.name))
        if known is not None:
            return known, card
        if msg.special == "None":
            warnings.append(f"{msg.full}.{f.name}: no OpenAPI schema, JSON name "
                            f"{lower_camel(f.name)!r} guessed")
        return lower_camel(f.name), card
    prop = msg.props.get(norm(f.name))
    if prop is not None:
        json_name, required = prop
        if card == "Opt" and required:
            card = "Keep"
        return json_name, card
    if f.kind == "message" and f.label == "single":
        sub = messages[f.type_path]
        known = [g for g in sub.fields if norm(g.name) in msg.props]
        if sub.fields and len(known) * 2 >= len(sub.fields):
            return f.name, "Inline"
    known = openapi_names(msg.module).get(norm(f.name))
    if known is not None:
        return known, card
    if msg.special == "None":
        warnings.append(f"{msg.full}.{f.name}: not in the OpenAPI schema, JSON name "
                        f"{lower_camel(f.name)!r} guessed")
    return lower_camel(f.name), card


def check_pointers(messages, pointers, warnings):
    by_key = {(m.module, norm(m.prost_name)): m for m in messages.values()}
    for key, fields in sorted(pointers.items()):
        msg = by_key.get(key)
        if msg is None:
            warnings.append(f"pointer list: no message {key[1]} in {key[0]}")
            continue
        names = {norm(f.name): f for f in msg.fields}
        for field in sorted(fields):
            f = names.get(field)
            if f is None:
                warnings.append(f"pointer list: {msg.full} has no field {field}")
            elif f.kind == "message" or f.label != "single":
                warnings.append(f"pointer list: {msg.full}.{f.name} is not a single scalar")


def rust_kind(f, index):
    if f.kind == "message":
        return f"M({index[f.type_path]})"
    return SCALARS[f.kind]


def render(messages, pointers, warnings):
    ordered = sorted(messages.values(), key=lambda m: m.full)
    index = {(m.module, m.prost_name): i for i, m in enumerate(ordered)}
    if len(ordered) > 65535:
        sys.exit("too many messages for u16 indices")
    out = []
    w = out.append
    w("// @generated by scripts/gen-protobuf-schema.py from k8s-pb 0.9.0 (messages, field numbers and")
    w("// wire types), k8s-openapi 0.29.0 (JSON names, required fields) and a list of Go pointer")
    w("// fields (zero values kept). Do not edit by hand; regenerate instead.")
    w("")
    w("use super::Card::{Inline, Keep, Map, Opt, Rep};")
    w("use super::Kind::*;")
    w("use super::{Field, Msg, Special};")
    w("")
    w("const fn f(tag: u32, json: &'static str, kind: super::Kind, card: super::Card) -> Field {")
    w("    Field { tag, json, kind, card }")
    w("}")
    w("")
    w("/// apiVersion -> protobuf package of its kinds.")
    w("pub(super) static API_GROUPS: &[(&str, &str)] = &[")
    for api_version, module in API_GROUPS:
        w(f'    ("{api_version}", "{proto_package(module)}"),')
    w("];")
    w("")
    w("/// Every message, sorted by full name; `M(i)` refers to `MESSAGES[i]`.")
    w("pub(super) static MESSAGES: &[Msg] = &[")
    for i, msg in enumerate(ordered):
        w(f"    // {i}")
        w("    Msg {")
        w(f'        name: "{msg.full}",')
        w(f"        special: Special::{msg.special},")
        if not msg.fields:
            w("        fields: &[],")
        else:
            w("        fields: &[")
            for f in msg.fields:
                json_name, card = json_field(msg, f, messages, pointers, warnings)
                w(f'            f({f.tag}, "{json_name}", {rust_kind(f, index)}, {card}),')
            w("        ],")
        w("    },")
    w("];")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_protobuf_schema.py OUTPUT.rs")
    warnings = []
    messages = collect(warnings)
    pointers = pointer_fields()
    check_pointers(messages, pointers, warnings)
    text = render(messages, pointers, warnings)
    with open(sys.argv[1], "w", encoding="utf-8") as fh:
        fh.write(text)
    # Keep `cargo fmt --check` happy.
    try:
        subprocess.run(["rustfmt", "--edition", "2024", sys.argv[1]], check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        warnings.append(f"rustfmt failed ({err}); format {sys.argv[1]} by hand")
    for line in warnings:
        print("warning:", line, file=sys.stderr)
    print(f"{len(messages)} messages written to {sys.argv[1]}", file=sys.stderr)


POINTER_FIELDS = """
# Go struct fields that are pointers to scalars (string/bool/int/float aliases), from
# k8s.io/api, k8s.io/apimachinery and k8s.io/apiextensions-apiserver zz_generated.deepcopy.go.
# A present zero value of such a field is meaningful and kept in JSON; other optional scalars
# are Go values with `omitempty`, so a zero value is dropped (as encoding/json would).
# Format: <proto package suffix> <GoStruct>.<GoField> (matched case-insensitively, ignoring
# non-alphanumerics, against the prost field names; the x-kubernetes-* fields use their JSON names)
core AppArmorProfile.LocalhostProfile
core AzureDiskVolumeSource.CachingMode
core AzureDiskVolumeSource.FSType
core AzureDiskVolumeSource.ReadOnly
core AzureDiskVolumeSource.Kind
core AzureFilePersistentVolumeSource.SecretNamespace
core CSIVolumeSource.ReadOnly
core CSIVolumeSource.FSType
core ClientIPConfig.TimeoutSeconds
core ClusterTrustBundleProjection.Name
core ClusterTrustBundleProjection.SignerName
core ClusterTrustBundleProjection.Optional
core ConfigMap.Immutable
core ConfigMapEnvSource.Optional
core ConfigMapKeySelector.Optional
core ConfigMapProjection.Optional
core ConfigMapVolumeSource.DefaultMode
core ConfigMapVolumeSource.Optional
core Container.RestartPolicy
core ContainerStatus.Started
core ContainerStatus.StopSignal
core DownwardAPIVolumeFile.Mode
core DownwardAPIVolumeSource.DefaultMode
core EndpointAddress.NodeName
core EndpointPort.AppProtocol
core EphemeralContainerCommon.RestartPolicy
core FCVolumeSource.Lun
core FileKeySelector.Optional
core GRPCAction.Service
core GlusterfsPersistentVolumeSource.EndpointsNamespace
core HostPathVolumeSource.Type
core ISCSIPersistentVolumeSource.InitiatorName
core ISCSIVolumeSource.InitiatorName
core KeyToPath.Mode
core Lifecycle.StopSignal
core LoadBalancerIngress.IPMode
core LocalVolumeSource.FSType
core NodeFeatures.SupplementalGroupsPolicy
core NodeFeatures.ContainerUlimits
core NodeRuntimeHandlerFeatures.RecursiveReadOnlyMounts
core NodeRuntimeHandlerFeatures.UserNamespaces
core NodeSwapStatus.Capacity
core PersistentVolumeClaimSpec.StorageClassName
core PersistentVolumeClaimSpec.VolumeMode
core PersistentVolumeClaimSpec.VolumeAttributesClassName
core PersistentVolumeClaimStatus.CurrentVolumeAttributesClassName
core PersistentVolumeSpec.VolumeMode
core PersistentVolumeSpec.VolumeAttributesClassName
core PodCertificateProjection.MaxExpirationSeconds
core PodDNSConfigOption.Value
core PodLogOptions.SinceSeconds
core PodLogOptions.TailLines
core PodLogOptions.LimitBytes
core PodLogOptions.Stream
core PodResourceClaim.ResourceClaimName
core PodResourceClaim.ResourceClaimTemplateName
core PodResourceClaimStatus.ResourceClaimName
core PodSecurityContext.RunAsUser
core PodSecurityContext.RunAsGroup
core PodSecurityContext.RunAsNonRoot
core PodSecurityContext.SupplementalGroupsPolicy
core PodSecurityContext.FSGroup
core PodSecurityContext.FSGroupChangePolicy
core PodSecurityContext.SELinuxChangePolicy
core PodSpec.TerminationGracePeriodSeconds
core PodSpec.ActiveDeadlineSeconds
core PodSpec.AutomountServiceAccountToken
core PodSpec.ShareProcessNamespace
core PodSpec.Priority
core PodSpec.RuntimeClassName
core PodSpec.EnableServiceLinks
core PodSpec.PreemptionPolicy
core PodSpec.SetHostnameAsFQDN
core PodSpec.HostUsers
core PodSpec.HostnameOverride
core PortStatus.Error
core Preconditions.UID
core Probe.TerminationGracePeriodSeconds
core ProjectedVolumeSource.DefaultMode
core ReplicationControllerSpec.Replicas
core ResourceHealth.Message
core SeccompProfile.LocalhostProfile
core Secret.Immutable
core SecretEnvSource.Optional
core SecretKeySelector.Optional
core SecretProjection.Optional
core SecretVolumeSource.DefaultMode
core SecretVolumeSource.Optional
core SecurityContext.Privileged
core SecurityContext.RunAsUser
core SecurityContext.RunAsGroup
core SecurityContext.RunAsNonRoot
core SecurityContext.ReadOnlyRootFilesystem
core SecurityContext.AllowPrivilegeEscalation
core SecurityContext.ProcMount
core ServiceAccount.AutomountServiceAccountToken
core ServiceAccountTokenProjection.ExpirationSeconds
core ServicePort.AppProtocol
core ServiceSpec.IPFamilyPolicy
core ServiceSpec.AllocateLoadBalancerNodePorts
core ServiceSpec.LoadBalancerClass
core ServiceSpec.InternalTrafficPolicy
core ServiceSpec.TrafficDistribution
core Toleration.TolerationSeconds
core TopologySpreadConstraint.MinDomains
core TopologySpreadConstraint.NodeAffinityPolicy
core TopologySpreadConstraint.NodeTaintsPolicy
core TypedLocalObjectReference.APIGroup
core TypedObjectReference.APIGroup
core TypedObjectReference.Namespace
core VolumeMount.RecursiveReadOnly
core VolumeMount.MountPropagation
core VolumeMountStatus.RecursiveReadOnly
core WindowsSecurityContextOptions.GMSACredentialSpecName
core WindowsSecurityContextOptions.GMSACredentialSpec
core WindowsSecurityContextOptions.RunAsUserName
core WindowsSecurityContextOptions.HostProcess
apps DaemonSetSpec.RevisionHistoryLimit
apps DaemonSetStatus.CollisionCount
apps DeploymentSpec.Replicas
apps DeploymentSpec.RevisionHistoryLimit
apps DeploymentSpec.ProgressDeadlineSeconds
apps DeploymentStatus.CollisionCount
apps DeploymentStatus.TerminatingReplicas
apps ReplicaSetSpec.Replicas
apps ReplicaSetStatus.TerminatingReplicas
apps RollingUpdateStatefulSetStrategy.Partition
apps StatefulSetSpec.Replicas
apps StatefulSetSpec.RevisionHistoryLimit
apps StatefulSetStatus.CollisionCount
coordination LeaseSpec.HolderIdentity
coordination LeaseSpec.LeaseDurationSeconds
coordination LeaseSpec.LeaseTransitions
coordination LeaseSpec.Strategy
coordination LeaseSpec.PreferredHolder
policy PodDisruptionBudgetSpec.UnhealthyPodEvictionPolicy
meta DeleteOptions.GracePeriodSeconds
meta DeleteOptions.OrphanDependents
meta DeleteOptions.PropagationPolicy
meta DeleteOptions.IgnoreStoreReadErrorWithClusterBreakingPotential
meta ListMeta.RemainingItemCount
meta ListOptions.TimeoutSeconds
meta ListOptions.SendInitialEvents
meta ObjectMeta.DeletionGracePeriodSeconds
meta OwnerReference.Controller
meta OwnerReference.BlockOwnerDeletion
meta PatchOptions.Force
meta Preconditions.UID
meta Preconditions.ResourceVersion
apiextensions CustomResourceDefinitionVersion.DeprecationWarning
apiextensions CustomResourceSubresourceScale.LabelSelectorPath
apiextensions ServiceReference.Path
apiextensions ServiceReference.Port
apiextensions ValidationRule.Reason
apiextensions ValidationRule.OptionalOldSelf
apiextensions WebhookClientConfig.URL
apiextensions JSONSchemaProps.Ref
apiextensions JSONSchemaProps.Maximum
apiextensions JSONSchemaProps.Minimum
apiextensions JSONSchemaProps.MaxLength
apiextensions JSONSchemaProps.MinLength
apiextensions JSONSchemaProps.MaxItems
apiextensions JSONSchemaProps.MinItems
apiextensions JSONSchemaProps.MultipleOf
apiextensions JSONSchemaProps.MaxProperties
apiextensions JSONSchemaProps.MinProperties
apiextensions JSONSchemaProps.XKubernetesPreserveUnknownFields
apiextensions JSONSchemaProps.XKubernetesListType
apiextensions JSONSchemaProps.XKubernetesMapType
"""


if __name__ == "__main__":
    main()
