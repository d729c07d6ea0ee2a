"""The Docker CLI's compose types (``cli/compose/types``, v28) as render/gotypes.py
descriptors, with the loader's decode hooks and merge specials (pure).

Field order is the Go struct order, which is the order ``docker stack config`` prints.
The keys are the mapstructure names the loader decodes from; ``OomScoreAdj`` has no
mapstructure tag, so the CLI never reads ``oom_score_adj`` — neither do we.

Source: github.com/docker/cli v28.2.2, cli/compose/types/types.go, loader/loader.go,
loader/merge.go, loader/volume.go; go-connections/nat for port specs.

Why one file (over 450 lines): a transcription of one set of Go files, kept in their
order so it can be compared with the source line by line.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from gitswarm.render.golang import GoError, parse_duration, ram_in_bytes, shlex_split, sprint
from gitswarm.render.gotypes import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    STR,
    UINT,
    GoType,
    extras,
    f,
    map_of,
    ptr,
    slice_of,
    struct,
)

# --- decode hooks (loader.go createTransformHook) -------------------------------------------


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def _external(data: Any) -> Any:
    if isinstance(data, bool):
        return {"external": data}
    if isinstance(data, dict):
        return {"external": True, "name": data.get("name")}
    raise GoError(f"invalid type {_type_name(data)} for external")


def _healthcheck_test(data: Any) -> Any:
    if isinstance(data, str):
        return ["CMD-SHELL", data]
    if isinstance(data, list):
        return data
    raise GoError(f"invalid type {_type_name(data)} for healthcheck.test")


def _shell_command(data: Any) -> Any:
    if isinstance(data, str):
        return shlex_split(data)
    return data


def _string_list(data: Any) -> Any:
    if isinstance(data, str):
        return [data]
    if isinstance(data, list):
        return data
    raise GoError(f"invalid type {_type_name(data)} for string list")


def _to_string(value: Any, allow_nil: bool) -> Any:
    if value is not None:
        return sprint(value)
    return None if allow_nil else ""


def _map_string_string(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _to_string(v, False) for k, v in data.items()}
    raise GoError(f"invalid type {_type_name(data)} for map[string]string")


def _mapping_or_list(sep: str, allow_nil: bool) -> Any:
    def hook(data: Any) -> Any:
        if isinstance(data, dict):
            return {k: _to_string(v, allow_nil) for k, v in data.items()}
        if isinstance(data, list):
            out: dict[str, Any] = {}
            for item in data:
                key, found, value = str(item).partition(sep)
                out[key] = value if found else (None if allow_nil else "")
            return out
        raise GoError(f"expected a map or a list, got {_type_name(data)}")

    return hook


def _hosts_list(data: Any) -> Any:
    pairs: list[str] = []
    if isinstance(data, dict):
        pairs = sorted(f"{k}:{sprint(v)}" for k, v in data.items() if v is not None)
    elif isinstance(data, list):
        for item in data:
            entry = sprint(item)
            for sep in ("=", ":"):
                key, found, value = entry.partition(sep)
                if found:
                    pairs.append(f"{key}:{value}")
                    break
    else:
        raise GoError(f"expected a map or a list, got {_type_name(data)}")
    out = []
    for pair in pairs:
        host, _, ip = pair.partition(":")
        if len(ip) > 2 and ip[0] == "[" and ip[-1] == "]":
            ip = ip[1:-1]
        out.append(f"{host}:{ip}")
    return out


def _ulimits(data: Any) -> Any:
    if isinstance(data, bool):
        raise GoError("invalid type bool for ulimits")
    if isinstance(data, int):
        return {"single": data}
    if isinstance(data, dict):
        return {"soft": data.get("soft"), "hard": data.get("hard")}
    raise GoError(f"invalid type {_type_name(data)} for ulimits")


def _size(data: Any) -> Any:
    if isinstance(data, bool):
        raise GoError("invalid type bool for size")
    if isinstance(data, int):
        return data
    if isinstance(data, str):
        return ram_in_bytes(data)
    raise GoError(f"invalid type {_type_name(data)} for size")


def _string_source(data: Any) -> Any:
    if isinstance(data, str):
        return {"source": data}
    if isinstance(data, dict):
        return data
    raise GoError(f"invalid type {_type_name(data)} for secret")


def _string_or_number_list(data: Any) -> Any:
    if not isinstance(data, list):
        raise GoError(f"invalid type {_type_name(data)} for string or number list")
    return [sprint(item) for item in data]


def _network_map(data: Any) -> Any:
    if isinstance(data, list):
        return {str(name): None for name in data}
    return data


def _build(data: Any) -> Any:
    if isinstance(data, str):
        return {"context": data}
    if isinstance(data, dict):
        return data
    raise GoError(f"invalid type {_type_name(data)} for service build")


def _duration(data: Any) -> Any:
    if isinstance(data, str):
        return parse_duration(data)
    raise GoError(f"invalid type {_type_name(data)} for duration")


# --- ports: go-connections/nat ParsePortSpec + swarmopts.ConvertPortToPortConfig ------------


def _parse_port_range(text: str) -> tuple[int, int]:
    if text == "":
        raise GoError("empty string specified for ports")

    def parse_uint16(part: str) -> int:
        # strconv.ParseUint(part, 10, 16), with messages that say which of its two
        # failures it is
        if not part.isascii() or not part.isdigit():
            raise GoError(f"{part!r} is not a port number")
        if int(part) > 65535:
            raise GoError(f"{part} is out of range 1-65535")
        return int(part)

    if "-" not in text:
        port = parse_uint16(text)
        return port, port
    parts = text.split("-")
    start, end = parse_uint16(parts[0]), parse_uint16(parts[1])
    if end < start:
        raise GoError(f"invalid range specified for port: {text}")
    return start, end


def _split_proto_port(raw: str) -> tuple[str, str]:
    parts = raw.split("/")
    if raw == "" or parts[0] == "":
        return "", ""
    if len(parts) == 1:
        return "tcp", raw
    if parts[1] == "":
        return "tcp", parts[0]
    return parts[1], parts[0]


def parse_port_spec(raw: str) -> list[tuple[str, str, str]]:
    """nat.ParsePortSpec: [(container port "80/tcp", host ip, host port)]."""
    parts = raw.split(":")
    if len(parts) == 1:
        ip, host_port, container = "", "", parts[0]
    elif len(parts) == 2:
        ip, host_port, container = "", parts[0], parts[1]
    elif len(parts) == 3:
        ip, host_port, container = parts
    else:
        ip, host_port, container = ":".join(parts[:-2]), parts[-2], parts[-1]
    proto, container = _split_proto_port(container)
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise GoError(f"invalid IP address {ip}")
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise GoError(f"invalid IP address: {ip}") from None
    if container == "":
        raise GoError(f"no port specified: {raw}<empty>")
    try:
        start, end = _parse_port_range(container)
    except GoError as exc:
        raise GoError(f"invalid container port: {exc}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = _parse_port_range(host_port)
        except GoError as exc:
            raise GoError(f"invalid host port: {exc}") from None
    if host_port and (end - start) != (host_end - host_start) and end != start:
        raise GoError(
            f"invalid ranges specified for container and host Ports: {container} and {host_port}"
        )
    if proto.lower() not in ("tcp", "udp", "sctp"):
        raise GoError(f"invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        if host_port:
            host_port = str(host_start + i)
        if start == end and host_start != host_end:
            host_port = f"{host_port}-{host_end}"
        out.append((f"{start + i}/{proto.lower()}", ip, host_port))
    return out


def _port_configs(raw: str) -> list[dict[str, Any]]:
    bindings: dict[str, list[tuple[str, str]]] = {}
    for port, ip, host_port in parse_port_spec(raw):
        bindings.setdefault(port, []).append((ip, host_port))
    out = []
    for port in sorted(bindings):
        number, _, proto = port.partition("/")
        for _ip, host_port in bindings[port]:
            if host_port == "":
                start = end = 0
            else:
                try:
                    start, end = _parse_port_range(host_port)
                except GoError:
                    raise GoError(
                        f"invalid hostport binding ({host_port}) for port ({number})"
                    ) from None
            for published in range(start, end + 1):
                out.append(
                    {
                        "mode": "ingress",
                        "target": int(number),
                        "published": published,
                        "protocol": proto,
                    }
                )
    return out


def _ports(data: Any) -> Any:
    if not isinstance(data, list):
        raise GoError(f"invalid type {_type_name(data)} for port")
    out: list[Any] = []
    for entry in data:
        if isinstance(entry, bool | float):
            raise GoError(f"invalid type {_type_name(entry)} for port")
        if isinstance(entry, int):
            out.extend(_port_configs(str(entry)))
        elif isinstance(entry, str):
            out.extend(_port_configs(entry))
        elif isinstance(entry, dict):
            out.append(entry)
        else:
            raise GoError(f"invalid type {_type_name(entry)} for port")
    return out


# --- volumes: loader/volume.go ParseVolume ---------------------------------------------------

_PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")


def _is_windows_drive(buffer: list[str], char: str) -> bool:
    return char == ":" and len(buffer) == 1 and buffer[0].isalpha()


def _is_file_path(source: str) -> bool:
    if source[0] in "./~":
        return True
    if len(source) == 1:
        return False
    if source.startswith("\\\\"):
        return True
    return _is_windows_drive([source[0]], source[1])


def parse_volume(spec: str) -> dict[str, Any]:
    volume: dict[str, Any] = {"type": "", "source": "", "target": "", "read_only": False}
    size = len(spec.encode())
    if size == 0:
        raise GoError("invalid empty volume spec")
    if size in (1, 2):
        volume.update(target=spec, type="volume")
        return volume
    buffer: list[str] = []
    for char in [*spec, ""]:
        if _is_windows_drive(buffer, char):
            buffer.append(char)
        elif char in (":", ""):
            text = "".join(buffer)
            if not buffer:
                raise GoError(f"invalid spec: {spec}: empty section between colons")
            if volume["source"] == "" and char == "":
                volume["target"] = text
            elif volume["source"] == "":
                volume["source"] = text
            elif volume["target"] == "":
                volume["target"] = text
            elif char == ":":
                raise GoError(f"invalid spec: {spec}: too many colons")
            else:
                for option in text.split(","):
                    if option == "ro":
                        volume["read_only"] = True
                    elif option == "rw":
                        volume["read_only"] = False
                    elif option == "nocopy":
                        volume["volume"] = {"nocopy": True}
                    elif option in _PROPAGATIONS:
                        volume["bind"] = {"propagation": option}
            buffer = []
        else:
            buffer.append(char)
    if volume["source"] == "":
        volume["type"] = "volume"
    elif _is_file_path(volume["source"]):
        volume["type"] = "bind"
    else:
        volume["type"] = "volume"
    return volume


def _service_volume(data: Any) -> Any:
    if isinstance(data, str):
        return parse_volume(data)
    if isinstance(data, dict):
        return data
    raise GoError(f"invalid type {_type_name(data)} for service volume")


# --- merge specials (merge.go) -------------------------------------------------------------


def _merge_keyed(key: str) -> Any:
    """mergeSlice: entries keyed by ``key``, later ones replacing earlier, sorted by key."""

    def merge(dst: Any, src: Any) -> Any:
        entries: dict[Any, Any] = {}
        for item in [*(dst or []), *(src or [])]:
            entries[item[key]] = item
        return [entries[k] for k in sorted(entries)]

    return merge


def _merge_logging(dst: Any, src: Any) -> Any:
    if src is None:
        return dst
    d_driver, s_driver = dst["driver"], src["driver"]
    if d_driver == s_driver or d_driver == "" or s_driver == "":
        out = dict(dst)
        if d_driver == "":
            out["driver"] = s_driver
        # mergo merges into a copy of a nil options map, which is then lost (CLI quirk)
        if dst["options"] is not None:
            out["options"] = {**dst["options"], **(src["options"] or {})}
        return out
    return src


def _merge_replace_if_set(dst: Any, src: Any) -> Any:
    return dst if src is None else src


def _merge_shell_command(dst: Any, src: Any) -> Any:
    return src if src else dst


def _merge_service_network(dst: Any, src: Any) -> Any:
    if src is None:
        return dst
    out = dict(dst)
    out["aliases"] = src["aliases"]
    if src["ipv4_address"]:
        out["ipv4_address"] = src["ipv4_address"]
    if src["ipv6_address"]:
        out["ipv6_address"] = src["ipv6_address"]
    return out


# --- marshalling specials --------------------------------------------------------------------


def _marshal_external(value: Any) -> Any:
    if value["name"] == "":
        return value["external"]
    return {"name": value["name"]}


def _marshal_ulimits(value: Any) -> Any:
    if value is None:
        return None
    if value["single"] != 0:
        return value["single"]
    return {k: value[k] for k in ("soft", "hard") if value[k] != 0}


def _marshal_duration(value: Any) -> Any:
    from gitswarm.render.golang import format_duration

    return format_duration(value)


# --- the types -----------------------------------------------------------------------------

DURATION = GoType("duration", name="Duration", hook=_duration, marshal=_marshal_duration)
UNIT_BYTES = GoType("bytes", name="UnitBytes", hook=_size, marshal=str)
PTR_UINT64 = ptr(UINT, merge=_merge_replace_if_set)
MAP_STRING_STRING = map_of(STR, hook=_map_string_string)
STRING_LIST = slice_of(STR, name="StringList", hook=_string_list)
SHELL_COMMAND = slice_of(STR, name="ShellCommand", hook=_shell_command, merge=_merge_shell_command)
MAPPING = map_of(STR, name="Mapping", hook=_mapping_or_list("=", False))
LABELS = map_of(STR, name="Labels", hook=_mapping_or_list("=", False))
MAPPING_WITH_EQUALS = map_of(ptr(STR), name="MappingWithEquals", hook=_mapping_or_list("=", True))
HOSTS_LIST = slice_of(STR, name="HostsList", hook=_hosts_list)
STRING_OR_NUMBER_LIST = slice_of(STR, name="StringOrNumberList", hook=_string_or_number_list)

EXTERNAL = struct(
    "External", f("name", STR), f("external", BOOL), hook=_external, marshal=_marshal_external
)

BUILD = struct(
    "BuildConfig",
    f("context", STR),
    f("dockerfile", STR),
    f("args", MAPPING_WITH_EQUALS),
    f("labels", LABELS),
    f("cache_from", STRING_LIST),
    f("extra_hosts", HOSTS_LIST),
    f("network", STR),
    f("target", STR),
    hook=_build,
)

FILE_REFERENCE = (
    f("source", STR),
    f("target", STR),
    f("uid", STR),
    f("gid", STR),
    f("mode", ptr(UINT)),
)
SERVICE_CONFIG_OBJ = struct("ServiceConfigObjConfig", *FILE_REFERENCE, hook=_string_source)
SERVICE_SECRET = struct("ServiceSecretConfig", *FILE_REFERENCE, hook=_string_source)

CREDENTIAL_SPEC = struct(
    "CredentialSpecConfig", f("config", STR), f("file", STR), f("registry", STR)
)

UPDATE_CONFIG = struct(
    "UpdateConfig",
    f("parallelism", PTR_UINT64),
    f("delay", DURATION),
    f("failure_action", STR),
    f("monitor", DURATION),
    f("max_failure_ratio", FLOAT),
    f("order", STR),
)
GENERIC_RESOURCE = struct(
    "GenericResource",
    f(
        "discrete_resource_spec",
        ptr(
            struct(
                "DiscreteGenericResource",
                f("kind", STR, omitempty=False),
                f("value", INT, omitempty=False),
            )
        ),
    ),
)
RESOURCES = struct(
    "Resources",
    f(
        "limits",
        ptr(struct("ResourceLimit", f("cpus", STR), f("memory", UNIT_BYTES), f("pids", INT))),
    ),
    f(
        "reservations",
        ptr(
            struct(
                "Resource",
                f("cpus", STR),
                f("memory", UNIT_BYTES),
                f("generic_resources", slice_of(GENERIC_RESOURCE)),
            )
        ),
    ),
)
RESTART_POLICY = struct(
    "RestartPolicy",
    f("condition", STR),
    f("delay", ptr(DURATION)),
    f("max_attempts", PTR_UINT64),
    f("window", ptr(DURATION)),
)
PLACEMENT = struct(
    "Placement",
    f("constraints", slice_of(STR)),
    f("preferences", slice_of(struct("PlacementPreferences", f("spread", STR)))),
    f("max_replicas_per_node", UINT),
)
DEPLOY = struct(
    "DeployConfig",
    f("mode", STR),
    f("replicas", PTR_UINT64),
    f("labels", LABELS),
    f("update_config", ptr(UPDATE_CONFIG)),
    f("rollback_config", ptr(UPDATE_CONFIG)),
    f("resources", RESOURCES),
    f("restart_policy", ptr(RESTART_POLICY)),
    f("placement", PLACEMENT),
    f("endpoint_mode", STR),
)
HEALTHCHECK = struct(
    "HealthCheckConfig",
    f("test", slice_of(STR, name="HealthCheckTest", hook=_healthcheck_test)),
    f("timeout", ptr(DURATION)),
    f("interval", ptr(DURATION)),
    f("retries", PTR_UINT64),
    f("start_period", ptr(DURATION)),
    f("start_interval", ptr(DURATION)),
    f("disable", BOOL),
)
LOGGING = ptr(
    struct("LoggingConfig", f("driver", STR), f("options", MAP_STRING_STRING)),
    merge=_merge_logging,
)
SERVICE_NETWORK = ptr(
    struct(
        "ServiceNetworkConfig",
        f("aliases", slice_of(STR)),
        f("driver_opts", MAP_STRING_STRING),
        f("ipv4_address", STR),
        f("ipv6_address", STR),
    ),
    merge=_merge_service_network,
)
PORT = struct(
    "ServicePortConfig",
    f("mode", STR),
    f("target", UINT),
    f("published", UINT),
    f("protocol", STR),
)
VOLUME_MOUNT = struct(
    "ServiceVolumeConfig",
    f("type", STR),
    f("source", STR),
    f("target", STR),
    f("read_only", BOOL),
    f("consistency", STR),
    f("bind", ptr(struct("ServiceVolumeBind", f("propagation", STR)))),
    f("volume", ptr(struct("ServiceVolumeVolume", f("nocopy", BOOL), f("subpath", STR)))),
    f("image", ptr(struct("ServiceVolumeImage", f("subpath", STR)))),
    f("tmpfs", ptr(struct("ServiceVolumeTmpfs", f("size", INT)))),
    f("cluster", ptr(struct("ServiceVolumeCluster"))),
    hook=_service_volume,
)
ULIMITS = ptr(
    struct("UlimitsConfig", f("single", INT), f("soft", INT), f("hard", INT), hook=_ulimits),
    merge=lambda dst, src: dst if src is None else src,
    marshal=_marshal_ulimits,
)

SERVICE = struct(
    "ServiceConfig",
    f("build", BUILD),
    f("cap_add", slice_of(STR)),
    f("cap_drop", slice_of(STR)),
    f("cgroupns_mode", STR),
    f("cgroup_parent", STR),
    f("command", SHELL_COMMAND),
    f("configs", slice_of(SERVICE_CONFIG_OBJ, merge=_merge_keyed("source"))),
    f("container_name", STR),
    f("credential_spec", CREDENTIAL_SPEC),
    f("depends_on", slice_of(STR)),
    f("deploy", DEPLOY),
    f("devices", slice_of(STR)),
    f("dns", STRING_LIST),
    f("dns_search", STRING_LIST),
    f("domainname", STR),
    f("entrypoint", SHELL_COMMAND),
    f("environment", MAPPING_WITH_EQUALS),
    f("env_file", STRING_LIST),
    f("expose", STRING_OR_NUMBER_LIST),
    f("external_links", slice_of(STR)),
    f("extra_hosts", HOSTS_LIST),
    f("hostname", STR),
    f("healthcheck", ptr(HEALTHCHECK)),
    f("image", STR),
    f("init", ptr(BOOL)),
    f("ipc", STR),
    f("isolation", STR),
    f("labels", LABELS),
    f("links", slice_of(STR)),
    f("logging", LOGGING),
    f("mac_address", STR),
    f("network_mode", STR),
    f("networks", map_of(SERVICE_NETWORK, hook=_network_map)),
    f("pid", STR),
    f("ports", slice_of(PORT, hook=_ports, merge=_merge_keyed("published"))),
    f("privileged", BOOL),
    f("read_only", BOOL),
    f("restart", STR),
    f("secrets", slice_of(SERVICE_SECRET, merge=_merge_keyed("source"))),
    f("security_opt", slice_of(STR)),
    f("shm_size", STR),
    f("stdin_open", BOOL),
    f("stop_grace_period", ptr(DURATION)),
    f("stop_signal", STR),
    f("sysctls", MAPPING),
    f("tmpfs", STRING_LIST),
    f("tty", BOOL),
    f("ulimits", map_of(ULIMITS)),
    f("user", STR),
    f("oomscoreadj", INT),
    f("userns_mode", STR),
    f("volumes", slice_of(VOLUME_MOUNT, merge=_merge_keyed("target"))),
    f("working_dir", STR),
    extras(),
)

NETWORK = struct(
    "NetworkConfig",
    f("name", STR),
    f("driver", STR),
    f("driver_opts", MAP_STRING_STRING),
    f(
        "ipam",
        struct(
            "IPAMConfig",
            f("driver", STR),
            f("config", slice_of(ptr(struct("IPAMPool", f("subnet", STR))))),
        ),
    ),
    f("external", EXTERNAL),
    f("internal", BOOL),
    f("attachable", BOOL),
    f("labels", LABELS),
    extras(),
)

_TOPOLOGY = struct("Topology", f("segments", MAPPING))
CLUSTER_VOLUME_SPEC = struct(
    "ClusterVolumeSpec",
    f("group", STR),
    f(
        "access_mode",
        ptr(
            struct(
                "AccessMode",
                f("scope", STR),
                f("sharing", STR),
                f(
                    "mount_volume",
                    ptr(struct("MountVolume", f("fs_type", STR), f("mount_flags", slice_of(STR)))),
                ),
                f("block_volume", ptr(struct("BlockVolume"))),
            )
        ),
    ),
    f(
        "accessibility_requirements",
        ptr(
            struct(
                "TopologyRequirement",
                f("requisite", slice_of(_TOPOLOGY)),
                f("preferred", slice_of(_TOPOLOGY)),
            )
        ),
    ),
    f(
        "capacity_range",
        ptr(struct("CapacityRange", f("required_bytes", UNIT_BYTES), f("limit_bytes", UNIT_BYTES))),
    ),
    f(
        "secrets",
        slice_of(struct("VolumeSecret", f("key", STR), f("secret", STR))),
    ),
    f("availability", STR),
)
VOLUME = struct(
    "VolumeConfig",
    f("name", STR),
    f("driver", STR),
    f("driver_opts", MAP_STRING_STRING),
    f("external", EXTERNAL),
    f("labels", LABELS),
    extras(),
    f("x-cluster-spec", ptr(CLUSTER_VOLUME_SPEC)),
)
FILE_OBJECT = struct(
    "FileObjectConfig",
    f("name", STR),
    f("file", STR),
    f("external", EXTERNAL),
    f("labels", LABELS),
    extras(),
    f("driver", STR),
    f("driver_opts", MAP_STRING_STRING),
    f("template_driver", STR),
)

# Casts the CLI applies to interpolated strings (loader/interpolate.go); "*" is any key,
# "[]" any list item.
CAST_PATHS: dict[tuple[str, ...], str] = {
    ("services", "*", "configs", "[]", "mode"): "int",
    ("services", "*", "secrets", "[]", "mode"): "int",
    ("services", "*", "healthcheck", "retries"): "int",
    ("services", "*", "healthcheck", "disable"): "bool",
    ("services", "*", "deploy", "replicas"): "int",
    ("services", "*", "deploy", "update_config", "parallelism"): "int",
    ("services", "*", "deploy", "update_config", "max_failure_ratio"): "float",
    ("services", "*", "deploy", "rollback_config", "parallelism"): "int",
    ("services", "*", "deploy", "rollback_config", "max_failure_ratio"): "float",
    ("services", "*", "deploy", "restart_policy", "max_attempts"): "int",
    ("services", "*", "deploy", "placement", "max_replicas_per_node"): "int",
    ("services", "*", "ports", "[]", "target"): "int",
    ("services", "*", "ports", "[]", "published"): "int",
    ("services", "*", "ulimits", "*"): "int",
    ("services", "*", "ulimits", "*", "hard"): "int",
    ("services", "*", "ulimits", "*", "soft"): "int",
    ("services", "*", "privileged"): "bool",
    ("services", "*", "oom_score_adj"): "int",
    ("services", "*", "read_only"): "bool",
    ("services", "*", "stdin_open"): "bool",
    ("services", "*", "tty"): "bool",
    ("services", "*", "volumes", "[]", "read_only"): "bool",
    ("services", "*", "volumes", "[]", "volume", "nocopy"): "bool",
    ("networks", "*", "external"): "bool",
    ("networks", "*", "internal"): "bool",
    ("networks", "*", "attachable"): "bool",
    ("volumes", "*", "external"): "bool",
    ("secrets", "*", "external"): "bool",
    ("configs", "*", "external"): "bool",
}

__all__ = ["ANY", "INT"]
