# SCAR's `docker build -f Dockerfile -t scar:1.0 .` then
#   docker run -it --gpus all --ipc=host -v /path/to/data:/root/data -v "$PWD/runs":/scar/runs scar:1.0 /bin/bash
# The project and bash/requirements.txt are installed; data (CIFAR, TinyImageNet) is mounted at
# /root/data (UNLEARN_DATA), the runs tree lives in /scar/runs (UNLEARN_ROOT).
FROM python:3.11-slim
WORKDIR /scar
COPY bash/requirements.txt bash/requirements.txt
RUN pip install --no-cache-dir -r bash/requirements.txt
COPY . .
ENV UNLEARN_DATA=/root/data UNLEARN_ROOT=/scar/runs PYTHONUNBUFFERED=1
CMD ["bash"]
