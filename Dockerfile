# SCAR's `docker build -f Dockerfile -t scar:1.0 .` then
#   docker run -it --gpus all --ipc=host -v /path/to/data:/root/data -v "$PWD/runs":/scar/runs scar:1.0 /bin/bash
# The project and bash/requirements.txt are installed; data (CIFAR, TinyImageNet) is mounted at
# /root/data (UNLEARN_DATA), the runs tree lives in /scar/runs (UNLEARN_ROOT).
# BASE and the PIP_* build args only matter for offline/mirror builds, e.g.
#   docker build --network host --build-arg BASE=local/python:3.11-slim \
#     --build-arg PIP_EXTRA_INDEX_URL="http://127.0.0.1:8765/simple" -t scar:1.0 .
# Unset (the default), they change nothing: python:3.11-slim and the public index.
ARG BASE=python:3.11-slim
FROM ${BASE}
WORKDIR /scar
COPY bash/requirements.txt bash/requirements.txt
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CONSTRAINT
RUN pip install --no-cache-dir -r bash/requirements.txt
COPY . .
ENV UNLEARN_DATA=/root/data UNLEARN_ROOT=/scar/runs PYTHONUNBUFFERED=1
CMD ["bash"]
