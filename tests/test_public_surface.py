"""Pins each package's public surface, so that changing one is a deliberate edit of this file.

Packages with a re-exporting `__init__` (video, analysis, engine) pin its `__all__`; the others (http,
store, devtools) have a docstring-only `__init__`, and each of their modules is pinned instead: its
`__all__`, or, where a module has none, the public classes and functions it defines.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType

import pytest

PACKAGE_ALL: dict[str, list[str]] = {
    "serve_app.video": [
        "FACTOR",
        "SampledChunk",
        "chunking_options",
        "decode_chunk",
        "file_sha256",
        "fit_frame_size",
        "plan_chunks",
        "plan_file",
        "probe",
        "visual_tokens",
    ],
    "serve_app.analysis": [
        "MODES",
        "OutputError",
        "answer_schema",
        "assemble",
        "build_instruction",
        "build_timeline",
        "check_custom_schema",
        "parse_answer",
        "parse_summary",
        "summary_instruction",
        "summary_schema",
        "thin_lines",
        "timeline_text",
    ],
    "serve_app.engine": ["ChatDelta", "Engine", "create_engine"],
    "serve_app.chat": ["ChatService", "chat_completion", "chat_stream"],
    "serve_app.search": [
        "ArchiveResults",
        "DEFAULT_LIMIT",
        "JobResults",
        "MAX_LIMIT",
        "Passage",
        "QUERY_HELP",
        "SearchIndex",
        "archive_index",
        "online_index",
        "passages",
        "to_match",
    ],
    "serve_app.speech": [
        "AudioTrack",
        "Recognizer",
        "decode_audio",
        "prompt_lines",
        "segments_in",
        "shared_recognizer",
        "to_srt",
        "to_webvtt",
        "transcribe_file",
    ],
}

MODULE_ALL: dict[str, list[str]] = {
    "serve_app.video.chunking": ["MAX_FRAMES", "MIN_FRAMES", "chunking_options", "plan_chunks", "plan_file"],
    "serve_app.video.decode": ["SampledChunk", "decode_chunk"],
    "serve_app.video.probe": [
        "BadPackets",
        "demux",
        "display_rotation",
        "ffmpeg_reason",
        "file_sha256",
        "frames_from",
        "header_fps",
        "open_video",
        "packets_from",
        "probe",
        "stream_start_s",
        "video_stream",
    ],
    "serve_app.video.guided": ["Shown", "activity", "guided_frames"],
    "serve_app.video.packets": [
        "CATCH_UP_S",
        "JOIN_S",
        "PacketInfo",
        "PacketParams",
        "WINDOW_S",
        "active_spans",
        "has_hidden_frame",
        "nal_length_size",
        "packet_params",
        "payload_size",
        "static_flags",
    ],
    "serve_app.devtools.idle_screen": ["write_idle_screen"],
    "serve_app.video.sampling": [
        "AdaptiveParams",
        "AdaptiveSampler",
        "ChangeDetector",
        "Selection",
        "is_scrolled",
        "thumbnail_size",
    ],
    "serve_app.video.thumbnails": ["THUMB_PX", "contact_sheet", "kept_frames", "sheet_tiles", "thumbnail_jpeg"],
    "serve_app.video.tokens": ["FACTOR", "PIXELS_PER_TOKEN", "TEMPORAL_PATCH", "fit_frame_size", "visual_tokens"],
    "serve_app.http.admission": ["Admission"],
    "serve_app.http.auth": ["ApiKeys", "AuthConfigError", "PUBLIC_PATHS", "check_auth_configured", "load_api_keys"],
    "serve_app.http.events": ["job_events", "resume_point", "sse", "stream_window_s"],
    "serve_app.http.fetch": [
        "ALLOWED_SCHEMES",
        "UrlPolicy",
        "address_problem",
        "check_url",
        "fetch_url",
        "resolve_checked",
    ],
    "serve_app.http.media_token": ["COOKIE", "MediaTokens", "asset_job"],
    "serve_app.http.intake": ["ANALYZE_BODY", "FORM_FIELDS", "Intake", "options_from_form", "receive_video"],
    "serve_app.http.problems": [
        "OptionsError",
        "PROBLEM_JSON",
        "PROBLEM_RESPONSES",
        "install_problem_handlers",
        "problem",
    ],
    "serve_app.http.upload": ["MultipartForm", "read_limited", "receive_multipart"],
    "serve_app.http.openai_errors": ["OPENAI_PATHS", "OpenAIErrors", "openai_error", "openai_status"],
    "serve_app.observability.logs": ["ROUTED_LOGGERS", "route_to_serve", "serve_request_id", "use_request_id"],
    "serve_app.observability.metrics": [
        "STAGES",
        "record_chunk",
        "record_fetch_failure",
        "record_problem",
        "record_stage",
        "record_video",
        "set_jobs",
    ],
    "serve_app.devtools.markers": [
        "ChunkCheck",
        "ModelInputProbe",
        "ModelView",
        "PairCheck",
        "check_chunk",
        "parse_pairs",
        "unpatchify",
        "write_offset_video",
    ],
    "serve_app.devtools.netguard": [
        "EgressBlocked",
        "install_loopback_guard",
        "is_installed",
        "is_local_address",
        "is_local_name",
        "uninstall_loopback_guard",
    ],
    "serve_app.devtools.synthetic": [
        "CODE_BITS",
        "ChangeDurations",
        "ScreenEvent",
        "ScreenLayout",
        "ScreenRenderer",
        "counter_box",
        "read_counter",
        "read_frame_index",
        "render_frame_index",
        "screen_share_events",
        "write_audio_only",
        "write_sample_video",
        "write_screen_share",
        "write_video",
    ],
}

#: Modules without `__all__`: the public classes and functions they define.
MODULE_DEFINES: dict[str, list[str]] = {
    "serve_app.store.files": ["FileStore", "resolve", "to_uri"],
    "serve_app.store.media": ["MediaCache", "is_local", "media_path"],
    "serve_app.store.jobs": ["JobStore", "ThumbnailTarget", "new_job_id"],
    "serve_app.devtools.cpu_profile": ["apply", "main", "patch_torchvision"],
    "serve_app.devtools.meeting": [
        "Line",
        "Spoken",
        "espeak_available",
        "say",
        "word_error_rate",
        "words",
        "write_meeting",
        "write_sample_meeting",
    ],
    "serve_app.devtools.tiny_model": ["build_tiny_model", "ensure_tiny_model", "is_tiny_model"],
}

#: Packages whose `__init__` is a docstring only: their modules carry the surface.
DOCSTRING_ONLY_PACKAGES = ("serve_app.http", "serve_app.store", "serve_app.devtools", "serve_app.observability")


def defined_public(module: ModuleType) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    )


@pytest.mark.parametrize("name", sorted(PACKAGE_ALL))
def test_package_all_is_pinned(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == PACKAGE_ALL[name]
    assert len(set(module.__all__)) == len(module.__all__)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


@pytest.mark.parametrize("name", sorted(MODULE_ALL))
def test_module_all_is_pinned(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == MODULE_ALL[name]
    assert len(set(module.__all__)) == len(module.__all__)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


@pytest.mark.parametrize("name", sorted(MODULE_DEFINES))
def test_module_without_all_defines_what_is_pinned(name: str) -> None:
    module = importlib.import_module(name)
    assert not hasattr(module, "__all__"), f"{name} has an __all__ now: move it to MODULE_ALL"
    assert defined_public(module) == MODULE_DEFINES[name]


def test_every_module_of_the_pinned_packages_is_pinned() -> None:
    # A new module in one of these packages needs a line here (or in PACKAGE_ALL's re-exports).
    import pkgutil

    pinned = set(MODULE_ALL) | set(MODULE_DEFINES)
    unpinned = []
    for package in ("serve_app.video", *DOCSTRING_ONLY_PACKAGES):
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__, prefix=package + "."):
            if not info.ispkg and info.name not in pinned:
                unpinned.append(info.name)
    assert not unpinned


@pytest.mark.parametrize("name", DOCSTRING_ONLY_PACKAGES)
def test_docstring_only_packages_re_export_nothing(name: str) -> None:
    package = importlib.import_module(name)
    assert package.__doc__ and len(package.__doc__.split()) >= 20, f"{name} needs a docstring saying what it is for"
    assert not hasattr(package, "__all__")
    public = [n for n in vars(package) if not n.startswith("_")]
    submodules = [n for n in public if isinstance(getattr(package, n), ModuleType)]
    assert public == submodules, f"{name}/__init__.py re-exports {sorted(set(public) - set(submodules))}"


def test_video_reexports_match_their_modules() -> None:
    # What the video core re-exports is public in the module that defines it, and the same object.
    import serve_app.video as video

    for name in video.__all__:
        value = getattr(video, name)
        home = getattr(value, "__module__", None)
        if home is None:  # a constant: find the submodule that exports it
            homes = [m for m in MODULE_ALL if m.startswith("serve_app.video.") and name in MODULE_ALL[m]]
            assert len(homes) == 1, name
            home = homes[0]
        assert home.startswith("serve_app.video."), f"serve_app.video.{name} comes from {home}"
        module = importlib.import_module(home)
        assert name in module.__all__, f"{home}.__all__ lacks {name}, which serve_app.video re-exports"
        assert getattr(module, name) is value


def test_video_core_exports_no_test_clip_generator() -> None:
    import serve_app.devtools.synthetic as synthetic
    import serve_app.video as video

    generators = [getattr(synthetic, n) for n in synthetic.__all__ if callable(getattr(synthetic, n))]
    assert len(generators) >= 10
    for name in dir(video):
        value = getattr(video, name)
        assert not any(value is g for g in generators), f"serve_app.video.{name} is a devtools clip generator"
        assert not str(getattr(value, "__module__", "")).startswith("serve_app.devtools"), name
    assert not [n for n in video.__all__ if n.startswith(("write_", "render_", "read_"))]
