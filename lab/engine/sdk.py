"""What both Docker orchestrators share: connecting, the SDK's errors in the
lab's words, images, volumes and the engine's facts.

The Docker SDK is imported in this package only (tests/unit/test_boundary.py
holds every other module to it)."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import docker
import docker.errors
import requests.exceptions

from .. import config
from ..errors import EnvironmentProblem
from .base import Engine, EngineError, EngineTimeout, Gone, Resource, RunResources
from .labels import IMAGE_LAB, LAB, RUN


def connect(base_url: str | None = None, timeout: int = 120) -> docker.DockerClient:
    """A client for the engine at ``base_url`` (default: what DOCKER_HOST or
    the default socket names), or one line on what to do when there is none."""
    where = base_url or os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.DockerClient(base_url=base_url, timeout=timeout) if base_url \
            else docker.from_env(timeout=timeout)
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        text = str(exc)
        if "Permission denied" in text or "PermissionError" in text:
            raise EnvironmentProblem(
                f"no permission to use the Docker engine at {where}: add your user to the "
                "'docker' group (sudo usermod -aG docker $USER, then log in again) or run as root"
            ) from None
        raise EnvironmentProblem(
            f"cannot reach a Docker engine at {where}: start it (sudo systemctl start docker) "
            "or point DOCKER_HOST at one"
        ) from None


@contextlib.contextmanager
def sdk(what: str = "") -> Iterator[None]:
    """The SDK's exceptions as the lab's: Gone, EngineTimeout, EngineError."""
    prefix = f"{what}: " if what else ""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise Gone(prefix + str(exc.explanation or exc)) from None
    except docker.errors.APIError as exc:
        raise EngineError(prefix + str(exc.explanation or exc)) from None
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
        raise EngineTimeout(prefix + f"the engine did not answer in time ({type(exc).__name__})") from None
    except docker.errors.DockerException as exc:
        raise EngineError(prefix + str(exc)) from None


def filters(lab: str, run: str | None, every_lab: bool) -> dict[str, Any]:
    labels = [LAB if every_lab else f"{LAB}={lab}"]
    if run:
        labels.append(f"{RUN}={run}")
    return {"label": labels}


def by_run(found: dict[str, RunResources], kind: str, labels: dict[str, str]) -> RunResources:
    """The resources of the run ``labels`` name, in ``found`` (added when
    first seen, as a run of the orchestrator ``kind``)."""
    key = labels.get(RUN, "?")
    return found.setdefault(key, RunResources(key, orchestrator=kind))


def resource(kind: str, thing: Any) -> Resource:
    labels = getattr(thing, "labels", None) if kind == "container" else None
    if labels is None:
        attrs = thing.attrs
        labels = attrs.get("Labels") or (attrs.get("Spec") or {}).get("Labels") or {}
    return Resource(kind, thing.name, thing.id, dict(labels or {}), thing)


class SdkEngine(Engine):
    """The parts of an Engine that are the same on one host and on Swarm mode."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self.client = client or connect()
        self.lab = config.lab_name()

    # -- the engine itself --------------------------------------------------
    def version(self) -> dict[str, Any]:
        with sdk("version"):
            return dict(self.client.version())

    def info(self) -> dict[str, Any]:
        with sdk("info"):
            return dict(self.client.info())

    def api_version(self) -> str:
        return str(self.client.api.api_version)

    # -- images -------------------------------------------------------------
    def images(self, every_lab: bool = False) -> list[Any]:
        with sdk("images"):
            return self.client.images.list(
                filters={"label": IMAGE_LAB if every_lab else f"{IMAGE_LAB}={self.lab}"})

    def image_exists(self, name: str) -> bool:
        try:
            self.client.images.get(name)
            return True
        except docker.errors.ImageNotFound:
            return False

    def image_id(self, name: str) -> str:
        with sdk(f"image {name}"):
            return str(self.client.images.get(name).id)

    def image_labels(self, name: str) -> dict[str, str]:
        with sdk(f"image {name}"):
            return dict(self.client.images.get(name).labels or {})

    def pull_image(self, name: str) -> None:
        repo, tag = split_image(name)
        with sdk():
            self.client.images.pull(repo, tag)

    def import_image(self, tarball: str, repo: str, tag: str, changes: list[str]) -> None:
        with sdk("docker import failed"):
            self.client.api.import_image_from_file(tarball, repository=repo, tag=tag, changes=changes)

    def build_image(self, *, context: str, dockerfile: str, target: str | None, tag: str,
                    args: dict[str, str], labels: dict[str, str]) -> str:
        try:
            image, _ = self.client.images.build(
                path=context, dockerfile=dockerfile, target=target, tag=tag, buildargs=args,
                labels=labels, rm=True, forcerm=True, pull=False)
        except docker.errors.BuildError as exc:
            tail = [line.get("stream", line.get("error", "")).strip() for line in exc.build_log][-3:]
            raise EngineError(f"{exc.msg}: {' | '.join(tail)}") from None
        except docker.errors.APIError as exc:
            raise EngineError(str(exc.explanation or exc)) from None
        return str(image.id)

    def tag_image(self, name: str, repo: str, tag: str) -> None:
        with sdk(f"tag {name}"):
            self.client.images.get(name).tag(repo, tag)

    def remove_image(self, image_id: str) -> None:
        with sdk(f"image {image_id}"):
            self.client.images.remove(image_id, force=True)

    # -- volumes ------------------------------------------------------------
    def create_volume(self, name: str, labels: dict[str, str]) -> Resource:
        with sdk(f"volume {name}"):
            return resource("volume", self.client.volumes.create(name, labels=labels))

    def _volumes(self, flt: dict[str, Any]) -> list[Resource]:
        with sdk("volumes"):
            return [resource("volume", v) for v in self.client.volumes.list(filters=flt)]

    def _remove_resources(self, things: list[Resource], removed: list[str], errors: list[str]) -> None:
        for thing in things:
            self._remove_one(thing, removed, errors, retry=False)

    def _remove_one(self, thing: Resource, removed: list[str], errors: list[str], retry: bool) -> bool:
        """Remove ``thing``, noting it or its error; False when it is still
        in use and ``retry`` says to try again later (a Swarm overlay network
        whose removed services' tasks have not left it yet)."""
        try:
            thing.raw.remove()
            removed.append(f"{thing.kind} {thing.name}")
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "not found" in str(exc.explanation):
                return True  # removed meanwhile (a Swarm manager forgets an overlay network a moment later)
            if retry and "active endpoints" in str(exc.explanation):
                return False
            errors.append(f"{thing.kind} {thing.name}: {exc.explanation}")
        return True


def split_image(image: str) -> tuple[str, str]:
    """repository and tag (a registry's host:port is not a tag)."""
    if ":" in image.rsplit("/", 1)[-1]:
        repo, _, tag = image.rpartition(":")
        return repo, tag
    return image, "latest"
