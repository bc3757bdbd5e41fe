# Deep Learning Explorer on a CUDA GPU.
#   docker build -t dl-explorer .
#   docker run --gpus all -p 8501:8501 -v dle-data:/data dl-explorer      # then open http://localhost:8501
# PyPI's torch wheel for Linux carries its own CUDA runtime (the nvidia-* wheels), so a slim Python base
# is enough: the host needs only the NVIDIA driver and the NVIDIA Container Toolkit. Without --gpus the
# same image trains on the CPU.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DLE_DATA_DIR=/data

WORKDIR /app

# dependencies first: this layer is rebuilt only when requirements.txt changes
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

# an unprivileged user owns the run store; a named volume at /data starts with this ownership
RUN useradd --create-home --uid 1000 explorer \
    && mkdir -p /data \
    && chown explorer:explorer /data
USER explorer

# runs, checkpoints and uploads live on the volume: they survive a new container
VOLUME ["/data"]
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4)"]

CMD ["streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "8501"]
