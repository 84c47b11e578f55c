"""Renders deploy/k8s overlays and reads command lines out of them, for the
deploy tests (manifests_test.py, netns_test.py).

Why a resolver of our own: CI is a fresh Debian 12 machine, and Debian 12
packages neither kustomize nor kubectl. This module implements the part of
kustomize the manifests use (resources, components, namespace, images,
configMapGenerator/secretGenerator without name hashes, strategic-merge and
JSON 6902 patches) and refuses any other kustomization field by name, so a
manifest that starts using one fails loudly here instead of being rendered
wrong. Where kubectl is installed, manifests_test.py renders each overlay
with `kubectl kustomize` too and requires the same objects.

It also computes what the kubelet would: a container's environment (values,
fieldRef, resourceFieldRef, configMap/secret key refs, Indexed Jobs'
JOB_COMPLETION_INDEX) and its argv with $(VAR) expanded, and the files a
pod sees under each volume mount.
"""

import base64
import copy
import math
import os
import re

import yaml


class ManifestError(Exception):
    """A problem in the manifests; the message names the file and field."""


KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

# Fields of a kustomization this resolver implements. Anything else is an error.
SUPPORTED_FIELDS = {
    "apiVersion", "kind", "resources", "components", "namespace", "images",
    "configMapGenerator", "secretGenerator", "generatorOptions", "patches",
}

CLUSTER_SCOPED_KINDS = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass",
}

# Strategic merge: the merge key of the lists our patches touch (Kubernetes'
# patchMergeKey for these fields). Other lists are replaced, as kustomize does
# for lists without a merge key.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}


def load_yaml_documents(path):
    try:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        raise ManifestError(f"{path}: not valid YAML: {e}") from e
    except OSError as e:
        raise ManifestError(f"{path}: cannot read: {e.strerror}") from e
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise ManifestError(f"{path}: document {i + 1} is not a mapping")
    return docs


def object_id(obj):
    md = obj.get("metadata") or {}
    return (obj.get("kind"), md.get("namespace"), md.get("name"))


def describe(obj):
    kind, ns, name = object_id(obj)
    return f"{kind}/{name}" + (f" (namespace {ns})" if ns else "")


def find_kustomization(directory):
    for name in KUSTOMIZATION_FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise ManifestError(f"{directory}: no kustomization.yaml")


def build(directory, _inherited=None):
    """The objects `kustomize build DIRECTORY` would print (order aside)."""
    directory = os.path.abspath(directory)
    kpath = find_kustomization(directory)
    docs = load_yaml_documents(kpath)
    if len(docs) != 1:
        raise ManifestError(f"{kpath}: expected one document")
    k = docs[0]
    unknown = sorted(set(k) - SUPPORTED_FIELDS)
    if unknown:
        raise ManifestError(f"{kpath}: {', '.join(unknown)}: not implemented by tests/deploy/k8s_manifests.py "
                            "(extend it, or the rendered manifests cannot be checked)")
    is_component = k.get("kind") == "Component"
    if is_component and _inherited is None:
        raise ManifestError(f"{kpath}: a Component is listed under `components`, not built on its own")
    objects = list(_inherited) if is_component else []

    for entry in k.get("resources") or []:
        path = os.path.normpath(os.path.join(directory, entry))
        if os.path.isdir(path):
            added = build(path)
        elif os.path.isfile(path):
            added = load_yaml_documents(path)
        else:
            raise ManifestError(f"{kpath}: resources: {entry}: no such file or directory")
        for obj in added:
            if any(object_id(o) == object_id(obj) for o in objects):
                raise ManifestError(f"{kpath}: resources: {entry}: {describe(obj)} is defined twice")
            objects.append(obj)

    for entry in k.get("components") or []:
        path = os.path.normpath(os.path.join(directory, entry))
        if not os.path.isdir(path):
            raise ManifestError(f"{kpath}: components: {entry}: no such directory")
        objects = build(path, objects)

    options = k.get("generatorOptions") or {}
    for field, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for gen in k.get(field) or []:
            objects = _generate(kpath, directory, field, kind, gen, options, objects)

    for i, p in enumerate(k.get("patches") or []):
        objects = _apply_patch_entry(kpath, directory, i, p, objects)

    if k.get("namespace"):
        for obj in objects:
            if obj.get("kind") not in CLUSTER_SCOPED_KINDS:
                obj.setdefault("metadata", {})["namespace"] = k["namespace"]

    for i, img in enumerate(k.get("images") or []):
        _apply_image(kpath, i, img, objects)
    return objects


def _generate(kpath, directory, field, kind, gen, options, objects):
    where = f"{kpath}: {field}[{gen.get('name')}]"
    if not gen.get("name"):
        raise ManifestError(f"{kpath}: {field}: an entry has no name")
    unknown = sorted(set(gen) - {"name", "behavior", "files", "literals", "options", "type"})
    if unknown:
        raise ManifestError(f"{where}: {', '.join(unknown)}: not implemented by tests/deploy/k8s_manifests.py")
    opts = dict(options)
    opts.update(gen.get("options") or {})
    # merge and replace keep the name the base gave the object (kustomize does the same).
    if not opts.get("disableNameSuffixHash") and gen.get("behavior", "create") == "create":
        raise ManifestError(f"{where}: name hashes are not implemented by tests/deploy/k8s_manifests.py; "
                            "set disableNameSuffixHash: true")
    data = {}
    for entry in gen.get("files") or []:
        key, _, rel = entry.partition("=") if "=" in entry else (os.path.basename(entry), "", entry)
        path = os.path.normpath(os.path.join(directory, rel))
        # kustomize's load restrictor: generator files stay inside the kustomization's folder.
        if os.path.commonpath([path, directory]) != directory:
            raise ManifestError(f"{where}: files: {entry}: outside {directory} (kustomize refuses it)")
        try:
            with open(path, "rb") as f:
                data[key] = f.read()
        except OSError as e:
            raise ManifestError(f"{where}: files: {entry}: {e.strerror}") from e
    for entry in gen.get("literals") or []:
        key, sep, value = entry.partition("=")
        if not sep:
            raise ManifestError(f"{where}: literals: {entry}: expected KEY=VALUE")
        data[key] = value.encode()

    behavior = gen.get("behavior", "create")
    existing = [o for o in objects if o.get("kind") == kind and o["metadata"].get("name") == gen["name"]]
    if behavior == "create":
        if existing:
            raise ManifestError(f"{where}: {kind}/{gen['name']} exists already; use behavior: merge or replace")
        obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}}
        if kind == "Secret":
            obj["type"] = gen.get("type", "Opaque")
        objects = objects + [obj]
    elif behavior in ("merge", "replace"):
        if len(existing) != 1:
            raise ManifestError(f"{where}: behavior: {behavior}, but no {kind}/{gen['name']} to change")
        obj = existing[0]
        if behavior == "replace":
            obj.pop("data", None)
            obj.pop("binaryData", None)
    else:
        raise ManifestError(f"{where}: behavior: {behavior}: expected create, merge or replace")
    for label_field in ("labels", "annotations"):
        if opts.get(label_field):
            obj["metadata"].setdefault(label_field, {}).update(opts[label_field])
    for key, raw in data.items():
        if kind == "Secret":
            obj.setdefault("data", {})[key] = base64.b64encode(raw).decode()
            continue
        try:
            obj.setdefault("data", {})[key] = raw.decode("utf-8")
        except UnicodeDecodeError:
            obj.setdefault("binaryData", {})[key] = base64.b64encode(raw).decode()
    return objects


def _matches(obj, target):
    for field in ("kind", "name", "namespace"):
        want = target.get(field)
        got = obj.get("kind") if field == "kind" else (obj.get("metadata") or {}).get(field)
        if want is not None and want != got:
            return False
    return True


def _apply_patch_entry(kpath, directory, index, entry, objects):
    where = f"{kpath}: patches[{index}]"
    unknown = sorted(set(entry) - {"path", "patch", "target"})
    if unknown:
        raise ManifestError(f"{where}: {', '.join(unknown)}: not implemented by tests/deploy/k8s_manifests.py")
    target = entry.get("target")
    if target:
        unknown = sorted(set(target) - {"kind", "name", "namespace"})
        if unknown:
            raise ManifestError(f"{where}: target: {', '.join(unknown)}: not implemented")
    if "path" in entry:
        source = os.path.join(directory, entry["path"])
        where = f"{source}"
        try:
            with open(source, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ManifestError(f"{kpath}: patches[{index}]: {entry['path']}: {e.strerror}") from e
    else:
        text = entry.get("patch", "")
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise ManifestError(f"{where}: not valid YAML: {e}") from e
    if len(docs) == 1 and isinstance(docs[0], list):
        if not target:
            raise ManifestError(f"{where}: a JSON 6902 patch needs a target")
        hits = [o for o in objects if _matches(o, target)]
        if not hits:
            raise ManifestError(f"{where}: the target {target} matches no object")
        for obj in hits:
            for op_index, op in enumerate(docs[0]):
                _json_patch_op(f"{where}: op {op_index + 1}", obj, op)
        return objects
    for doc in docs:
        if not isinstance(doc, dict):
            raise ManifestError(f"{where}: expected a strategic-merge patch (a mapping) or a JSON 6902 list")
        t = target or {"kind": doc.get("kind"), "name": (doc.get("metadata") or {}).get("name")}
        hits = [o for o in objects if _matches(o, t)]
        if not hits:
            raise ManifestError(f"{where}: {t.get('kind')}/{t.get('name')}: no such object to patch")
        if doc.get("$patch") == "delete":
            objects = [o for o in objects if o not in hits]
            continue
        for obj in hits:
            patched = strategic_merge(obj, {k: v for k, v in doc.items() if k != "$patch"}, "")
            obj.clear()
            obj.update(patched)
    return objects


def strategic_merge(base, patch, field):
    """Kubernetes' strategic merge for the fields our patches use."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                merged = strategic_merge(out[key], value, key)
                if merged == {} and value != {}:
                    out.pop(key)  # a map the patch emptied goes, as in kustomize's output
                else:
                    out[key] = merged
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        # kustomize's order: the patch's items in the patch's order (merged
        # with the base's item of the same key), then the base's other items.
        key = MERGE_KEYS[field]
        patched_keys = {item.get(key) for item in patch if isinstance(item, dict)}
        out = []
        for item in patch:
            if item.get("$patch") == "delete":
                continue
            match = [b for b in base if isinstance(b, dict) and b.get(key) == item.get(key)]
            out.append(strategic_merge(match[0], item, "") if match else copy.deepcopy(item))
        out += [copy.deepcopy(b) for b in base if not (isinstance(b, dict) and b.get(key) in patched_keys)]
        return out
    return copy.deepcopy(patch)


def _json_patch_op(where, obj, op):
    kind = op.get("op")
    if kind not in ("add", "replace", "remove"):
        raise ManifestError(f"{where}: op {kind}: only add, replace and remove are implemented")
    path = op.get("path", "")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    if not parts:
        raise ManifestError(f"{where}: path {path!r}: expected /a/b/...")
    node = obj
    for depth, part in enumerate(parts[:-1]):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError):
            raise ManifestError(f"{where}: path {path}: /{'/'.join(parts[:depth + 1])} does not exist") from None
    last = parts[-1]
    value = copy.deepcopy(op.get("value"))
    if isinstance(node, list):
        if last == "-" and kind == "add":
            node.append(value)
            return
        try:
            i = int(last)
        except ValueError:
            raise ManifestError(f"{where}: path {path}: {last!r} is not a list index") from None
        if not 0 <= i <= len(node) - (0 if kind == "add" else 1):
            raise ManifestError(f"{where}: path {path}: index {i} is out of range")
        if kind == "add":
            node.insert(i, value)
        elif kind == "replace":
            node[i] = value
        else:
            del node[i]
        return
    if kind != "add" and last not in node:
        raise ManifestError(f"{where}: path {path} does not exist")
    if kind == "remove":
        del node[last]
    else:
        node[last] = value


def _apply_image(kpath, index, img, objects):
    if not img.get("name"):
        raise ManifestError(f"{kpath}: images[{index}]: no name")
    found = False
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            image = c.get("image", "")
            name, tag = split_image(image)
            if name != img["name"]:
                continue
            found = True
            new = img.get("newName", name)
            if img.get("digest"):
                c["image"] = f"{new}@{img['digest']}"
            else:
                t = img.get("newTag", tag)
                c["image"] = f"{new}:{t}" if t else new
    if not found:
        raise ManifestError(f"{kpath}: images[{index}]: no container uses image {img['name']}")


def split_image(image):
    """('registry:5000/x/barrage', '0.1.0') from 'registry:5000/x/barrage:0.1.0'."""
    if "@" in image:
        return image.split("@", 1)[0], ""
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1:]
    return image, ""


# ----------------------------------------------------------------------------
# What the kubelet sees.

def pod_spec(obj):
    if obj.get("kind") in ("Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        return ((obj.get("spec") or {}).get("template") or {}).get("spec")
    if obj.get("kind") == "Pod":
        return obj.get("spec")
    return None


def pod_template_labels(obj):
    if obj.get("kind") == "Pod":
        return (obj.get("metadata") or {}).get("labels") or {}
    return (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def pods_of(obj):
    """[(pod name, completion index or None)] for one instance of each pod the workload starts."""
    kind = obj.get("kind")
    name = obj["metadata"]["name"]
    spec = obj.get("spec") or {}
    if kind == "Job":
        completions = spec.get("completions", 1)
        if spec.get("completionMode") == "Indexed":
            return [(f"{name}-{i}-local", i) for i in range(completions)]
        return [(f"{name}-{i}-local", None) for i in range(spec.get("parallelism", 1))]
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        return [(f"{name}-{i}", None) for i in range(spec.get("replicas", 1))]
    return [(name, None)]


def _quantity(value):
    """A Kubernetes quantity as a float of base units ("500m" -> 0.5, "1Gi" -> 2**30)."""
    s = str(value)
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix in sorted(suffixes, key=len, reverse=True):
        if s.endswith(suffix):
            return float(s[:-len(suffix)]) * suffixes[suffix]
    return float(s)


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text, env):
    """Kubernetes' $(VAR) expansion: known variables are replaced, $$ is a
    literal $, unknown references stay as they are."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(sub, text)


def unresolved_references(text, env):
    return [m.group(1) for m in _VAR.finditer(text) if m.group(1) and m.group(1) not in env]


def container_env(objects, workload, container, pod_name, index):
    """The container's environment as the kubelet builds it, in order."""
    where = f"{describe(workload)}: container {container.get('name')}: env"
    env = {}
    if workload.get("kind") == "Job" and (workload.get("spec") or {}).get("completionMode") == "Indexed":
        env["JOB_COMPLETION_INDEX"] = str(index)
    for e in container.get("env") or []:
        name = e.get("name")
        if "value" in e:
            env[name] = expand(str(e["value"]), env)
            continue
        src = e.get("valueFrom") or {}
        if "fieldRef" in src:
            path = src["fieldRef"].get("fieldPath")
            if path == "metadata.name":
                env[name] = pod_name
            elif path == "metadata.namespace":
                env[name] = workload["metadata"].get("namespace", "default")
            elif path == "metadata.annotations['batch.kubernetes.io/job-completion-index']" and index is not None:
                env[name] = str(index)
            else:
                raise ManifestError(f"{where}[{name}]: fieldRef {path}: not implemented by the test")
        elif "resourceFieldRef" in src:
            ref = src["resourceFieldRef"]
            section, _, resource = ref.get("resource", "").partition(".")
            amount = ((container.get("resources") or {}).get(section) or {}).get(resource)
            if amount is None:
                raise ManifestError(f"{where}[{name}]: resourceFieldRef {ref.get('resource')}: the container sets none")
            # The kubelet rounds up to a whole number of divisors.
            env[name] = str(math.ceil(_quantity(amount) / _quantity(ref.get("divisor", 1)) - 1e-9))
        elif "configMapKeyRef" in src or "secretKeyRef" in src:
            kind, ref = ("ConfigMap", src["configMapKeyRef"]) if "configMapKeyRef" in src else ("Secret", src["secretKeyRef"])
            files = object_files(objects, kind, ref.get("name"), workload["metadata"].get("namespace"))
            if files is None or ref.get("key") not in files:
                raise ManifestError(f"{where}[{name}]: {kind} {ref.get('name')} has no key {ref.get('key')}")
            env[name] = files[ref["key"]].decode()
        else:
            raise ManifestError(f"{where}[{name}]: neither value nor a known valueFrom")
    return env


def object_files(objects, kind, name, namespace):
    """{key: bytes} of a rendered ConfigMap or Secret, or None if it is not in the render."""
    for o in objects:
        if o.get("kind") == kind and o["metadata"].get("name") == name and o["metadata"].get("namespace") == namespace:
            files = {}
            for k, v in (o.get("data") or {}).items():
                files[k] = base64.b64decode(v) if kind == "Secret" else str(v).encode()
            for k, v in (o.get("binaryData") or {}).items():
                files[k] = base64.b64decode(v)
            for k, v in (o.get("stringData") or {}).items():
                files[k] = str(v).encode()
            return files
    return None


def mounted_files(objects, workload, container):
    """{mountPath: {"volume": volume, "files": {relative path: bytes} or None, "writable": bool}}.
    files is None for a Secret or ConfigMap that is not in the render (made
    by hand, as barrage-tls); then only the volume's items name its paths."""
    spec = pod_spec(workload)
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    out = {}
    for m in container.get("volumeMounts") or []:
        where = f"{describe(workload)}: container {container.get('name')}: volumeMounts[{m.get('mountPath')}]"
        v = volumes.get(m.get("name"))
        if v is None:
            raise ManifestError(f"{where}: no volume named {m.get('name')} in the pod")
        files = None
        known_paths = None
        if "configMap" in v or "secret" in v:
            kind = "ConfigMap" if "configMap" in v else "Secret"
            src = v["configMap"] if kind == "ConfigMap" else v["secret"]
            name = src.get("name") if kind == "ConfigMap" else src.get("secretName")
            data = object_files(objects, kind, name, workload["metadata"].get("namespace"))
            items = src.get("items")
            if items is not None:
                known_paths = {i["path"]: i["key"] for i in items}
            if data is not None:
                if items is None:
                    files = dict(data)
                else:
                    files = {}
                    for i in items:
                        if i["key"] not in data:
                            raise ManifestError(f"{where}: volume {v['name']}: items names key {i['key']}, "
                                                f"which {kind} {name} does not have (keys: {', '.join(sorted(data))})")
                        files[i["path"]] = data[i["key"]]
            elif not src.get("optional") and kind == "ConfigMap":
                raise ManifestError(f"{where}: volume {v['name']}: ConfigMap {name} is not in the render")
        elif "emptyDir" in v:
            files = {}
        else:
            raise ManifestError(f"{where}: volume {v['name']}: only configMap, secret and emptyDir are understood")
        if m.get("subPath"):
            raise ManifestError(f"{where}: subPath is not implemented by the test")
        out[m["mountPath"]] = {
            "volume": v,
            "files": files,
            "known_paths": known_paths if files is None else set(files),
            "writable": "emptyDir" in v and not m.get("readOnly"),
        }
    return out


def container_argv(objects, workload, container, pod_name, index, entrypoint):
    """(argv, env) as the container starts them. entrypoint is the image's
    ENTRYPOINT (e.g. tini --), which a container's `command` would replace."""
    env = container_env(objects, workload, container, pod_name, index)
    if container.get("command"):
        argv = list(container["command"]) + list(container.get("args") or [])
    else:
        argv = list(entrypoint) + list(container.get("args") or [])
    return [expand(str(a), env) for a in argv], env


def workloads(objects):
    return [o for o in objects if pod_spec(o) is not None]


def find(objects, kind, name):
    hits = [o for o in objects if o.get("kind") == kind and o["metadata"].get("name") == name]
    return hits[0] if hits else None
