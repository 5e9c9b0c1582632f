"""Shared by Benchmarks/compare and Benchmarks/connections: build, nginx, configs, processes.

Everything listens on 127.0.0.1 only, every process started here is stopped by its pid, and every
wait has a deadline.
"""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def need_nginx():
    """nginx from Debian when missing (nginx-light, else nginx)."""
    if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
        return shutil.which("nginx") or "/usr/sbin/nginx"
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log("installing nginx-light")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    if subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "nginx-light"], env=env).returncode != 0:
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "nginx"], check=True, env=env)
    return shutil.which("nginx") or "/usr/sbin/nginx"


def build_release():
    """The release binaries (mandate, mandate-bench); MANDATE_BIN_DIR skips the build."""
    if os.environ.get("MANDATE_BIN_DIR"):
        return os.environ["MANDATE_BIN_DIR"]
    scratch = os.environ.get("SWIFT_SCRATCH_PATH", os.path.join(ROOT, ".build"))
    env = dict(os.environ)
    if not shutil.which("swift") and os.path.exists("/opt/swift/usr/bin/swift"):
        env["PATH"] = "/opt/swift/usr/bin:" + env["PATH"]
    cmd = ["swift", "build", "-c", "release", "--scratch-path", scratch]
    subprocess.run(cmd, cwd=ROOT, check=True, env=env, stdout=sys.stderr)
    out = subprocess.run(cmd + ["--show-bin-path"], cwd=ROOT, check=True, env=env, capture_output=True, text=True)
    return out.stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {deadline} s")


def pin(cpus):
    """`taskset -c CPUS` prefix, or nothing when CPUS is empty or taskset is missing."""
    return ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []


class Processes:
    """Children started by this script; each stopped by its own pid."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, name, cpus="", stdout=None, cwd=None):
        log(f"starting {name}: {' '.join(cmd)}" + (f" (CPU {cpus})" if cpus else ""))
        p = subprocess.Popen(pin(cpus) + cmd, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.PIPE,
                             cwd=cwd, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, p, deadline=5.0):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)  # nginx: fast shutdown; mandate: stop
            try:
                p.wait(deadline)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(deadline)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p)


def nginx_upstream_conf(workdir, port):
    """The small upstream: nginx answering every request with a fixed 200 body, one worker."""
    return _nginx_conf(workdir, "upstream", 1, f"""
    server {{
        listen 127.0.0.1:{port} reuseport;
        keepalive_requests 10000000;
        location / {{ return 200 "ok\\n"; }}
    }}""")


def nginx_proxy_conf(workdir, port, upstream_port, workers):
    """nginx as a plain reverse proxy with keep-alive upstream connections."""
    return _nginx_conf(workdir, "proxy", workers, f"""
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}""")


def _nginx_conf(workdir, name, workers, http_block):
    d = os.path.join(workdir, f"nginx-{name}")
    os.makedirs(d, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = f"""# Written by Benchmarks/bench_env.py
{user}worker_processes {workers};
worker_rlimit_nofile 30000;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 20000; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{http_block}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def mandate_conf(workdir, port, upstream_port, workers, principal_conf):
    """Mandate with full verification (DPoP + chain + policy) in front of the same upstream."""
    with open(principal_conf) as f:
        principal = f.read()
    path = os.path.join(workdir, "mandate.conf")
    with open(path, "w") as f:
        f.write(f"""# Written by Benchmarks/bench_env.py
listen 127.0.0.1:{port};
workers {workers};
public_origin http://127.0.0.1:{port};
upstream http://127.0.0.1:{upstream_port};
access_log off;
idle_timeout 300s;
{principal}
route / {{ methods GET; scope bench:read; effect allow; }}
""")
    return path


def identities(bindir, workdir):
    """A principal for the load generator, written where the Mandate config can enroll it."""
    d = os.path.join(workdir, "identities")
    subprocess.run([os.path.join(bindir, "mandate"), "loadgen", "--write-identities", d], check=True,
                   stdout=subprocess.DEVNULL)
    return d


def process_tree(pid):
    """pid and its descendants (nginx master + workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kb(pid):
    """VmRSS summed over the process tree, in kB."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pid):
    """utime + stime summed over the process tree, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / tick


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": os.uname().release}


def workdir():
    """A scratch folder for configs, keys and per-run JSON, removed at exit (MANDATE_BENCH_KEEP=1 keeps it)."""
    d = tempfile.mkdtemp(prefix="mandate-bench-")
    if os.environ.get("MANDATE_BENCH_KEEP") != "1":
        atexit.register(shutil.rmtree, d, True)
    return d


def write_json(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
