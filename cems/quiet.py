"""Known warnings that dependencies raise about themselves, silenced where they arise.

A warning a user can do nothing about (a dependency's own use of a deprecated API of another
dependency) is noise on standard error; it buries the project's own notes and looks like a
fault. Each entry here names the warning by category, message and the module that raises it,
so nothing else is hidden. Call :func:`ignore_known_dependency_warnings` just before
importing the dependency.
"""

from __future__ import annotations

import warnings


def ignore_known_dependency_warnings() -> None:
    """Install the narrow filters for the dependencies' self-inflicted warnings.

    * signxml (imported by openleadr) annotates its signatures with
      ``cryptography``'s DSA key types, which cryptography 43 and newer deprecate at
      attribute access: two ``CryptographyDeprecationWarning: DSA is deprecated`` lines on
      every ``cems dr`` command. The project signs nothing with DSA.
    """
    try:
        from cryptography.utils import CryptographyDeprecationWarning
    except ImportError:  # cryptography absent or without the class: nothing to silence
        return
    warnings.filterwarnings("ignore", message=r"DSA is deprecated",
                            category=CryptographyDeprecationWarning, module=r"signxml(\.|$)")
