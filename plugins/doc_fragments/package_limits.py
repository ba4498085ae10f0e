# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
"""Package limits shared by monoscape_package and monoscape_unpack (module_utils/monoscape_package.py)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  max_bytes:
    description: Largest accepted package file, in bytes.
    type: int
    default: 67108864
  max_entries:
    description: Most entries (files and folders) a package may have.
    type: int
    default: 10000
  max_ratio:
    description: Largest accepted ratio of the unpacked size to the package's size, overall.
    type: int
    default: 100
  max_unpacked:
    description:
      - Largest accepted total size of the package's files once unpacked, in bytes.
      - monoscape.paas.monoscape_unpack counts the real bytes it writes, not the sizes the zip declares.
    type: int
    default: 134217728
"""
