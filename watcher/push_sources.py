"""Which source makes a build named by a push event worth watching: a watched
version ARN (wildcards too) or a watched pipeline (`image-pipeline/*` too). The same
sources discovery follows; a build of none of them is dropped (unless
`[events] follow_all`). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from watcher.model import Arn, ImageSnapshot, PipelineArn


@dataclass(frozen=True)
class PushSources:
    versions: tuple[str, ...] = ()
    pipelines: tuple[str, ...] = ()

    def needs_snapshot(self, build_arn: str) -> bool:
        """Whether only the build's GetImage can tell (it names the pipeline)."""
        return bool(self.pipelines)

    def source_of(self, build_arn: str, snapshot: ImageSnapshot | None) -> str | None:
        """The version or pipeline ARN that `build_arn` belongs to, or None. Without
        its snapshot, only version ARNs can match."""
        build = Arn.parse(build_arn)
        for version in self.versions:
            if Arn.parse(version).matches(build):
                return version
        if snapshot is None or not snapshot.pipeline:
            return None
        for text in self.pipelines:
            pipeline = PipelineArn.parse(text)
            same_place = (pipeline.partition, pipeline.region, pipeline.account) == (
                build.partition,
                build.region,
                build.account,
            )
            # A pipeline builds its images in its own account and region; GetImage
            # names it by its ARN's last part (`watcher.aws`).
            if same_place and pipeline.name in ("*", snapshot.pipeline):
                return (
                    text
                    if not pipeline.is_wildcard
                    else str(
                        PipelineArn(
                            pipeline.partition, pipeline.region, pipeline.account, snapshot.pipeline
                        )
                    )
                )
        return None
