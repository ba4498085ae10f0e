"""Filters that render DevStack's local.conf from Ansible data.

``devstack_localrc_order`` orders the ``[[local|localrc]]`` variables so that
every ``$VAR`` / ``${VAR}`` reference to another variable of the same section
comes after that variable's definition (bash evaluates the section top to
bottom). ``devstack_local_conf`` renders the whole file: the ordered
variables, ``enable_service`` / ``disable_service`` lines, ``enable_plugin``
lines (last, as DevStack requires) and the post-config style meta-sections.

The output is canonical: it depends on the content of the inputs, not on the
order of dictionary keys, so reordering an inventory never changes local.conf
(and never triggers a new stack.sh run). Errors name what to fix.
"""

import heapq
import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

# A variable reference inside a double-quoted bash string: $NAME or ${NAME...}.
# An escaped dollar (\$) is a literal dollar, not a reference.
_REFERENCE = re.compile(r"(?<!\\)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_NO_SPACE = re.compile(r"^\S+$")

# stack.sh merges meta-sections at these phases, in this order (see DevStack's
# stack.sh: merge_config_group ... post-config / extra / post-extra / test-config).
META_PHASES = ("post-config", "extra", "post-extra", "test-config")


class DevstackLocalConfError(AnsibleFilterError):
    """Invalid input for local.conf; the message says what to fix."""


def _scalar(value, where):
    """A localrc or INI value as DevStack expects it (booleans as True/False)."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float | str):
        return str(value)
    if value is None:
        raise DevstackLocalConfError(f"{where} has no value; give it a string (an empty string is allowed)")
    raise DevstackLocalConfError(f"{where} must be a string, number or boolean, not {type(value).__name__}")


def references(value):
    """Names of the shell variables a localrc value refers to."""
    return {braced or plain for braced, plain in _REFERENCE.findall(str(value))}


def _find_cycle(pending, deps):
    """One dependency cycle among ``pending`` names, as a list ending where it starts."""
    start = min(pending)
    path, seen = [start], {start: 0}
    while True:
        current = path[-1]
        following = sorted(dep for dep in deps[current] if dep in pending)
        nxt = following[0]
        if nxt in seen:
            return [*path[seen[nxt] :], nxt]
        seen[nxt] = len(path)
        path.append(nxt)


def order_localrc(localrc):
    """Return ``[(name, value), ...]`` with definitions before references.

    References to names that are not keys of ``localrc`` are external (stackrc
    or the environment define them) and impose no order; a variable may refer
    to itself (``PATH=$PATH:/x`` uses the earlier value). Among the variables
    free to go next, the alphabetically first goes first, so the result is a
    function of the content only. A cycle (``A=$B``, ``B=$A``) cannot be
    written in any order: it raises an error naming the cycle.
    """
    if localrc is None:
        return []
    if not isinstance(localrc, Mapping):
        raise DevstackLocalConfError(
            f"localrc must be a mapping of variable names to values, not {type(localrc).__name__}"
        )
    values = {}
    for name, value in localrc.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise DevstackLocalConfError(
                f"localrc variable name {name!r} is not a shell variable name"
                " (letters, digits and _, not starting with a digit)"
            )
        values[name] = _scalar(value, f"localrc variable {name}")
    deps = {name: (references(value) & values.keys()) - {name} for name, value in values.items()}
    dependants = {name: set() for name in values}
    for name, needed in deps.items():
        for dep in needed:
            dependants[dep].add(name)
    waiting = {name: len(needed) for name, needed in deps.items()}
    ready = [name for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        name = heapq.heappop(ready)
        ordered.append((name, values[name]))
        for dependant in dependants[name]:
            waiting[dependant] -= 1
            if waiting[dependant] == 0:
                heapq.heappush(ready, dependant)
    if len(ordered) != len(values):
        pending = {name for name, count in waiting.items() if count > 0}
        cycle = _find_cycle(pending, deps)
        detail = ", ".join(f"{name}={values[name]!r}" for name in cycle[:-1])
        raise DevstackLocalConfError(
            "localrc variables refer to each other in a cycle: "
            + " -> ".join(cycle)
            + f" ({detail}); bash cannot define them in any order,"
            " so break the cycle by giving one of them a literal value"
        )
    return ordered


def shell_double_quote(value):
    """``value`` inside bash double quotes: ``$VAR`` expands; quotes, backquotes
    and backslashes are literal, and an escaped ``\\$`` stays a literal dollar."""
    out = []
    text = str(value)
    for index, char in enumerate(text):
        if char == "\\" and text[index + 1 : index + 2] == "$":
            out.append(char)
        elif char in '"`\\':
            out.append("\\" + char)
        elif char == "\n":
            raise DevstackLocalConfError(f"localrc value {text!r} spans several lines; give a single-line value")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _services(names, what):
    if names is None:
        return []
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise DevstackLocalConfError(f"{what} must be a list of DevStack service names")
    for name in names:
        if not isinstance(name, str) or not _SERVICE.match(name):
            raise DevstackLocalConfError(
                f"{what}: {name!r} is not a DevStack service name (e.g. n-cpu, horizon, q-svc)"
            )
    return list(dict.fromkeys(names))


def _plugin_lines(plugins):
    if plugins is None:
        return []
    if isinstance(plugins, str) or not isinstance(plugins, Sequence):
        raise DevstackLocalConfError("plugins must be a list of {name, url, ref} mappings")
    lines, names = [], set()
    for plugin in plugins:
        if not isinstance(plugin, Mapping) or not plugin.get("name") or not plugin.get("url"):
            raise DevstackLocalConfError(f"plugin {plugin!r} needs a name and a url")
        fields = [str(plugin["name"]), str(plugin["url"])]
        if plugin.get("ref"):
            fields.append(str(plugin["ref"]))
        for field in fields:
            if not _NO_SPACE.match(field):
                raise DevstackLocalConfError(f"plugin {plugin['name']!r}: {field!r} must not contain white space")
        if fields[0] in names:
            raise DevstackLocalConfError(f"plugin {fields[0]!r} is listed twice")
        names.add(fields[0])
        lines.append("enable_plugin " + " ".join(fields))
    return lines


def _ini_value_lines(key, value, where):
    if isinstance(value, list | tuple):
        # a multi-valued option (oslo.config MultiStrOpt): one line per value
        return [f"{key} = {_scalar(item, where)}" for item in value]
    text = _scalar(value, where)
    if "\n" in text:
        raise DevstackLocalConfError(f"{where} spans several lines; give a single-line value")
    return [f"{key} = {text}"]


def _section_lines(where, section, options):
    if not str(section) or any(c in str(section) for c in "[]\n"):
        raise DevstackLocalConfError(f"{where}: {section!r} is not an INI section name")
    options = options or {}
    if not isinstance(options, Mapping):
        raise DevstackLocalConfError(f"{where} [{section}] must map options to values")
    lines = [f"[{section}]"]
    for key in sorted(options, key=str):
        if not _NO_SPACE.match(str(key)) or "=" in str(key):
            raise DevstackLocalConfError(f"{where} [{section}]: {key!r} is not an option name")
        lines.extend(_ini_value_lines(key, options[key], f"{where} [{section}] {key}"))
    lines.append("")
    return lines


def _meta_file_lines(phase, filename, sections):
    where = f"[[{phase}|{filename}]]"
    if not _NO_SPACE.match(str(filename)) or any(c in str(filename) for c in "|[]"):
        raise DevstackLocalConfError(f"{where}: the file name must not contain white space, |, [ or ]")
    sections = sections or {}
    if not isinstance(sections, Mapping):
        raise DevstackLocalConfError(f"{where} must map INI sections to options")
    lines = [where]
    # DEFAULT first, as in the files oslo.config writes
    for section in sorted(sections, key=lambda s: (str(s) != "DEFAULT", str(s))):
        lines.extend(_section_lines(where, section, sections[section]))
    return lines


def _meta_lines(meta):
    if not meta:
        return []
    if not isinstance(meta, Mapping):
        raise DevstackLocalConfError("meta-sections must be a mapping: phase -> file -> section -> option -> value")
    unknown = sorted(set(meta) - set(META_PHASES))
    if unknown:
        raise DevstackLocalConfError(
            f"unknown local.conf phase(s) {unknown}: DevStack merges {list(META_PHASES)} "
            "(the localrc section is built from the localrc variables)"
        )
    lines = []
    for phase in META_PHASES:
        files = meta.get(phase) or {}
        if not isinstance(files, Mapping):
            raise DevstackLocalConfError(f"[[{phase}|...]] must map file names to sections")
        for filename in sorted(files, key=str):
            lines.extend(_meta_file_lines(phase, filename, files[filename]))
    return lines


def render_local_conf(localrc, enabled_services=None, disabled_services=None, plugins=None, meta_sections=None):
    """The text of local.conf (ends with a newline)."""
    lines = ["[[local|localrc]]"]
    lines.extend(f"{name}={shell_double_quote(value)}" for name, value in order_localrc(localrc))
    enabled = _services(enabled_services, "enabled services")
    disabled = _services(disabled_services, "disabled services")
    both = sorted(set(enabled) & set(disabled))
    if both:
        raise DevstackLocalConfError(f"services {both} are both enabled and disabled")
    # after the variables: a localrc ENABLED_SERVICES is the base they change
    if enabled:
        lines.append("enable_service " + " ".join(enabled))
    if disabled:
        lines.append("disable_service " + " ".join(disabled))
    # plugins last: settings after an enable_plugin line do not reach the plugin
    lines.extend(_plugin_lines(plugins))
    lines.append("")
    lines.extend(_meta_lines(meta_sections))
    return "\n".join(lines).rstrip("\n") + "\n"


def devstack_localrc_order(localrc):
    """Filter: ``[[name, value], ...]`` in an order bash can evaluate."""
    return [[name, value] for name, value in order_localrc(localrc)]


def devstack_local_conf(localrc, enabled_services=None, disabled_services=None, plugins=None, meta_sections=None):
    """Filter: the text of local.conf."""
    return render_local_conf(localrc, enabled_services, disabled_services, plugins, meta_sections)


class FilterModule:
    """DevStack local.conf filters."""

    def filters(self):
        return {
            "devstack_local_conf": devstack_local_conf,
            "devstack_localrc_order": devstack_localrc_order,
        }
