"""The library of ``unetblur blur``: :func:`anonymise` runs a :class:`BlurConfig` over images, folders,
videos, webcams and streams.

Rooms: :mod:`.config` (the settings and the blurrer they open), :mod:`.plan` (inputs → jobs, every
output and sidecar name, overwrite safety, shards), :mod:`.frames` (the image, video and stream loops,
fail closed), :mod:`.run` (the run over all jobs and its summary).
"""

from .config import DEFAULT_MODEL, PACKAGED_MODEL, STUDENT_MODEL, BlurConfig, open_blurrer_for, resolve_model
from .frames import anonymised, audit_record, blur_image_file, blur_stream, blur_video_file, fail_closed, mask_regions, warm_up
from .plan import (OUTPUT_SUFFIX, Job, OutputGuard, check_output, default_output, input_kind, iter_media, output_layout,
                   parse_shard, plan_jobs, planned_writes, sidecar, stream_output_name)
from .run import Summary, anonymise

__all__ = ["DEFAULT_MODEL", "PACKAGED_MODEL", "STUDENT_MODEL", "BlurConfig", "open_blurrer_for", "resolve_model",
           "anonymised", "audit_record", "blur_image_file", "blur_stream", "blur_video_file", "fail_closed",
           "mask_regions", "warm_up", "OUTPUT_SUFFIX", "Job", "OutputGuard", "check_output", "default_output",
           "input_kind", "iter_media", "output_layout", "parse_shard", "plan_jobs", "planned_writes", "sidecar",
           "stream_output_name", "Summary", "anonymise"]
