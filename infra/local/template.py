"""Reading ``template.yaml`` the way CloudFormation would, for the local stack and tests.

Everything local is derived from the template's own Resources — tables, queues, the
bucket, the bus, the secret, the functions with their environment, HTTP routes and
event sources — so the local stack cannot drift from what ``sam deploy`` creates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class TemplateError(ValueError):
    pass


# ---------------------------------------------------------------------------- YAML

_SHORT_FORMS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "GetAtt",
            "Sub",
            "Join",
            "Select",
            "Split",
            "If",
            "Equals",
            "Not",
            "And",
            "Or",
            "FindInMap",
            "Base64",
            "GetAZs",
            "ImportValue",
            "Cidr",
            "Length",
            "ToJsonString",
        )
    },
}


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]
    """A YAML loader that understands CloudFormation's short-form tags (``!Ref``…)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = _SHORT_FORMS.get(suffix)
    if name is None:
        raise TemplateError(f"unknown CloudFormation tag !{suffix}")
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_document(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} is not a CloudFormation template")
    return document


# ---------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # /webhooks/{carrier}
    function: str  # logical id
    authorizer: str | None = None  # name of the HttpApi's Lambda authorizer guarding it

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def pattern(self) -> re.Pattern[str]:
        regex = ""
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("+}"):
                regex += f"(?P<{part[1:-2]}>.+)"
            elif part.startswith("{"):
                regex += f"(?P<{part[1:-1]}>[^/]+)"
            else:
                regex += re.escape(part)
        return re.compile(f"^{regex}$")


@dataclass(frozen=True)
class HttpAuthorizer:
    """A Lambda authorizer of an ``AWS::Serverless::HttpApi`` (``Auth.Authorizers``)."""

    name: str
    function: str  # logical id of the authorizer function
    identity_headers: tuple[str, ...]  # lower-cased; all must be present and non-empty
    ttl_seconds: int  # ReauthorizeEvery: results cached per identity for this long (0: never)
    payload_version: str
    simple_responses: bool


@dataclass(frozen=True)
class QueueSource:
    """An SQS event source of a function."""

    function: str
    queue: str  # logical id of the queue
    batch_size: int
    batching_window_seconds: int
    report_batch_item_failures: bool


@dataclass(frozen=True)
class ScheduleSource:
    """A ``Schedule``/``ScheduleV2`` event of a function (``rate(…)`` expressions)."""

    function: str
    name: str
    expression: str

    @property
    def period(self) -> timedelta:
        found = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", self.expression.strip())
        if not found:
            raise TemplateError(
                f"{self.function}.{self.name}: only rate(…) schedules run locally, not {self.expression}"
            )
        amount, unit = int(found.group(1)), found.group(2).rstrip("s")
        return {"minute": timedelta(minutes=amount), "hour": timedelta(hours=amount), "day": timedelta(days=amount)}[
            unit
        ]


@dataclass
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str  # module.attr inside code_uri
    runtime: str
    timeout: int
    memory: int
    environment: dict[str, Any]
    policies: list[Any]
    events: dict[str, Any]

    @property
    def module_path(self) -> Path:
        module, _, _attr = self.handler.rpartition(".")
        return self.code_uri / (module.replace(".", "/") + ".py")

    @property
    def handler_attr(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass
class Template:
    document: dict[str, Any]
    path: Path = TEMPLATE_PATH
    parameter_overrides: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = TEMPLATE_PATH, parameters: dict[str, str] | None = None) -> Template:
        return cls(load_document(path), path, dict(parameters or {}))

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.document["Resources"]
        return resources

    def of_type(self, resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.resources.items():
            if resource.get("Type") == resource_type and self.condition_holds(resource):
                yield logical_id, resource

    def properties(self, logical_id: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.resources[logical_id].get("Properties", {})
        return properties

    def parameter(self, name: str) -> str:
        if name in self.parameter_overrides:
            return self.parameter_overrides[name]
        spec = self.document.get("Parameters", {}).get(name)
        if spec is None or "Default" not in spec:
            raise TemplateError(f"parameter {name} has no value")
        return str(spec["Default"])

    def condition_holds(self, resource: dict[str, Any]) -> bool:
        name = resource.get("Condition")
        return True if name is None else self.condition(name)

    def condition(self, name: str) -> bool:
        expression = self.document.get("Conditions", {}).get(name)
        if expression is None:
            raise TemplateError(f"unknown condition {name}")
        return bool(self._evaluate_condition(expression))

    def _evaluate_condition(self, expression: Any) -> Any:
        if isinstance(expression, dict) and len(expression) == 1:
            ((key, value),) = expression.items()
            if key == "Fn::Equals":
                left, right = (self._evaluate_condition(v) for v in value)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._evaluate_condition(value[0])
            if key == "Fn::And":
                return all(self._evaluate_condition(v) for v in value)
            if key == "Fn::Or":
                return any(self._evaluate_condition(v) for v in value)
            if key == "Condition":
                return self.condition(value)
            if key == "Ref":
                return self.parameter(value)
        return expression

    # -- SAM -----------------------------------------------------------------------------

    def functions(self) -> dict[str, FunctionSpec]:
        """Every ``AWS::Serverless::Function`` with the SAM ``Globals`` merged in."""
        globals_ = self.document.get("Globals", {}).get("Function", {})
        specs: dict[str, FunctionSpec] = {}
        for logical_id, resource in self.of_type("AWS::Serverless::Function"):
            properties = _merge_globals(globals_, resource.get("Properties", {}))
            specs[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_uri=(self.path.parent / properties["CodeUri"]).resolve(),
                handler=properties["Handler"],
                runtime=properties.get("Runtime", ""),
                timeout=int(properties.get("Timeout", 3)),
                memory=int(properties.get("MemorySize", 128)),
                environment=dict(properties.get("Environment", {}).get("Variables", {})),
                policies=list(properties.get("Policies", [])),
                events=dict(properties.get("Events", {})),
            )
        return specs

    def http_authorizers(self) -> dict[str, HttpAuthorizer]:
        """The Lambda authorizers declared on the template's HTTP APIs, by name."""
        found: dict[str, HttpAuthorizer] = {}
        for _api, resource in self.of_type("AWS::Serverless::HttpApi"):
            authorizers = resource.get("Properties", {}).get("Auth", {}).get("Authorizers", {})
            for name, spec in authorizers.items():
                arn = spec.get("FunctionArn")
                if not (isinstance(arn, dict) and "Fn::GetAtt" in arn):
                    raise TemplateError(f"authorizer {name}: FunctionArn must be !GetAtt <Function>.Arn")
                identity = spec.get("Identity", {})
                found[name] = HttpAuthorizer(
                    name=name,
                    function=arn["Fn::GetAtt"][0],
                    identity_headers=tuple(str(h).lower() for h in identity.get("Headers", [])),
                    # SAM's default for ReauthorizeEvery is 300 seconds.
                    ttl_seconds=int(identity.get("ReauthorizeEvery", 300)),
                    payload_version=str(spec.get("AuthorizerPayloadFormatVersion", "")),
                    simple_responses=bool(spec.get("EnableSimpleResponses", False)),
                )
        return found

    def _default_authorizer(self, api: Any) -> str | None:
        logical = api.get("Ref") if isinstance(api, dict) else None
        resource = self.resources.get(logical or "", {})
        default = resource.get("Properties", {}).get("Auth", {}).get("DefaultAuthorizer")
        return str(default) if default else None

    def http_routes(self) -> list[Route]:
        routes: list[Route] = []
        for name, spec in self.functions().items():
            for event in spec.events.values():
                if event.get("Type") != "HttpApi":
                    continue
                properties = event["Properties"]
                authorizer = properties.get("Auth", {}).get("Authorizer") or self._default_authorizer(
                    properties.get("ApiId")
                )
                routes.append(
                    Route(
                        method=str(properties["Method"]).upper(),
                        path=properties["Path"],
                        function=name,
                        authorizer=None if authorizer in (None, "NONE") else str(authorizer),
                    )
                )
        # Literal segments win over parameters, as API Gateway matches the most specific route.
        return sorted(routes, key=lambda r: (r.path.count("{"), -len(r.path)))

    def schedules(self) -> list[ScheduleSource]:
        return [
            ScheduleSource(function=name, name=event_name, expression=str(event["Properties"]["Schedule"]))
            for name, spec in self.functions().items()
            for event_name, event in spec.events.items()
            if event.get("Type") in ("Schedule", "ScheduleV2")
        ]

    def queue_sources(self) -> list[QueueSource]:
        sources: list[QueueSource] = []
        for name, spec in self.functions().items():
            for event in spec.events.values():
                if event.get("Type") != "SQS":
                    continue
                properties = event["Properties"]
                queue = properties["Queue"]
                if not (isinstance(queue, dict) and "Fn::GetAtt" in queue):
                    raise TemplateError(f"{name}: SQS event source must use !GetAtt <Queue>.Arn")
                sources.append(
                    QueueSource(
                        function=name,
                        queue=queue["Fn::GetAtt"][0],
                        batch_size=int(properties.get("BatchSize", 10)),
                        batching_window_seconds=int(properties.get("MaximumBatchingWindowInSeconds", 0)),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in properties.get("FunctionResponseTypes", []),
                    )
                )
        return sources


def _merge_globals(globals_: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    merged = {**globals_, **properties}
    if "Environment" in globals_ or "Environment" in properties:
        merged["Environment"] = {
            "Variables": {
                **globals_.get("Environment", {}).get("Variables", {}),
                **properties.get("Environment", {}).get("Variables", {}),
            }
        }
    return merged


# ---------------------------------------------------------------------------- intrinsics

_NO_VALUE = object()
# How a template writes an HTTP API's invoke URL (the form `sam init` and the AWS docs use).
_EXECUTE_API_URL = re.compile(
    r"https://\$\{(?P<api>[A-Za-z0-9]+)\}\.execute-api\.\$\{AWS::Region\}\.(?:\$\{AWS::URLSuffix\}|amazonaws\.com)"
)


@dataclass
class Resolver:
    """Resolves intrinsic functions against a deployed (local) stack."""

    template: Template
    stack_name: str
    refs: dict[str, Any] = field(default_factory=dict)  # logical id -> Ref value
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    # An HTTP API's logical id -> the local gateway's base URL: the execute-api URL the template
    # builds for it (``https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}``) means this.
    api_endpoints: dict[str, str] = field(default_factory=dict)

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{self.stack_name}/local",
        }

    def ref(self, name: str) -> Any:
        pseudo = self.pseudo()
        if name in pseudo:
            return pseudo[name]
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.template.document.get("Parameters", {}):
            return self.template.parameter(name)
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"!Ref {name}: not created (yet) in the local stack")

    def get_att(self, name: str, attribute: str) -> Any:
        try:
            return self.attributes[(name, attribute)]
        except KeyError:
            raise TemplateError(f"!GetAtt {name}.{attribute}: not available in the local stack") from None

    def resolve(self, value: Any) -> Any:
        result = self._resolve(value)
        return None if result is _NO_VALUE else result

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self._resolve(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            handler = self._functions().get(key)
            if handler is not None:
                return handler(argument)
        return {k: v for k, v in ((k, self._resolve(v)) for k, v in value.items()) if v is not _NO_VALUE}

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": lambda arg: self.ref(arg),
            "Fn::GetAtt": lambda arg: self.get_att(*(arg if isinstance(arg, list) else str(arg).split(".", 1))),
            "Fn::Sub": self._sub,
            "Fn::Join": lambda arg: str(arg[0]).join(str(self._resolve(v)) for v in self._resolve(arg[1])),
            "Fn::Select": lambda arg: self._resolve(arg[1])[int(self._resolve(arg[0]))],
            "Fn::Split": lambda arg: str(self._resolve(arg[1])).split(arg[0]),
            "Fn::If": lambda arg: self._resolve(arg[1] if self.template.condition(arg[0]) else arg[2]),
        }

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        resolved = {k: self._resolve(v) for k, v in variables.items()}
        text = _EXECUTE_API_URL.sub(lambda found: self.api_endpoints.get(found["api"], found[0]), text)

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in resolved:
                return str(resolved[name])
            if "." in name:
                logical, attribute = name.split(".", 1)
                return str(self.get_att(logical, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def references(value: Any) -> set[str]:
    """Logical ids a property tree refers to (for creation order)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                found.add(argument[0] if isinstance(argument, list) else str(argument).split(".")[0])
            elif key == "Fn::Sub":
                text = argument if isinstance(argument, str) else argument[0]
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!][^}]*)\}", text)}
                if isinstance(argument, list):
                    found |= references(argument[1])
            else:
                found |= references(argument)
    return {name for name in found if not name.startswith("AWS::")}
