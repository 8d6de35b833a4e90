"""A contract type import-linter lacks, for `lint-imports` (registered in pyproject.toml).

import-linter sees an external package as one module (`websockets`), so it cannot say "only
the transport may import websockets.frames". This contract reads the import lines instead:
`package` is the external package, `submodules` the parts of it that only `allowed_importers`
(and their descendants) may import, directly.
"""

from __future__ import annotations

import re
from typing import Any

from importlinter import Contract, ContractCheck, fields, output


class ExternalSubmodulesContract(Contract):
    type_name = "external_submodules"

    package = fields.StringField()
    submodules = fields.ListField(subfield=fields.StringField())
    allowed_importers = fields.ListField(subfield=fields.StringField())

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        package, parts = str(self.package), [str(s) for s in self.submodules]  # type: ignore[attr-defined]
        names = "|".join(re.escape(p) for p in parts)
        pattern = re.compile(
            rf"^\s*(?:from\s+{re.escape(package)}\.(?:{names})\b"  # from websockets.frames import x
            rf"|import\s+{re.escape(package)}\.(?:{names})\b"  # import websockets.frames
            rf"|from\s+{re.escape(package)}\s+import\s+.*\b(?:{names})\b)"  # from websockets import frames
        )
        allowed = [str(a) for a in self.allowed_importers]  # type: ignore[attr-defined]
        illegal = []
        for importer in sorted(graph.find_modules_that_directly_import(package)):
            if any(importer == a or importer.startswith(a + ".") for a in allowed):
                continue
            for detail in graph.get_import_details(importer=importer, imported=package):
                if pattern.match(detail["line_contents"]):
                    illegal.append((importer, detail["line_number"], detail["line_contents"]))
        return ContractCheck(kept=not illegal, metadata={"illegal": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, line_number, line in check.metadata["illegal"]:
            output.print_error(f"{importer}:{line_number}: {line}", bold=False)
            output.new_line()
