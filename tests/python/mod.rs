//! Python with no configuration: a bare `reload` in a real Flask, FastAPI or Django project
//! serves it through the framework (its own reloader off), on `PORT`, through the project's
//! virtualenv when there is one; an edit to a `.py` file or a template restarts it; behind the
//! dev proxy the server gets the app port; `reload init` writes the same commands down.
//!
//! The frameworks are real: each test first checks that its module imports and fails at once,
//! with the `pip` line that installs it, when it does not.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{Project, Session, free_port, http_get};

/// Wait until `GET /` on `port` answers exactly `body`.
#[track_caller]
fn wait_for_body(session: &Session, port: u16, body: &str) {
    session.wait_until(
        &format!("the server on port {port} to answer {body:?}"),
        || http_get(port).filter(|answer| answer == body),
    );
}

/// reload's first status line: what it detected.
fn first_status_line(session: &Session) -> String {
    session
        .stderr()
        .lines()
        .find(|line| line.starts_with("[reload]"))
        .unwrap_or_default()
        .to_owned()
}

/// `GET /` through the dev proxy on `port`, as a browser on this machine sends it; the body.
fn proxied_get(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1);
    (status == Some("200")).then(|| body.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Flask, in its virtualenv

/// A Flask app: its answer is the template's, with `VERSION` and the interpreter's prefix (the
/// virtualenv it runs in).
fn flask_app(version: &str) -> String {
    format!(
        "import sys\n\
         from flask import Flask, render_template\n\n\
         app = Flask(__name__)\n\
         VERSION = \"{version}\"\n\n\n\
         @app.route(\"/\")\n\
         def index():\n    \
             return render_template(\"index.html\", version=VERSION, prefix=sys.prefix)\n"
    )
}

#[test]
fn a_flask_app_runs_in_its_virtualenv_and_restarts_on_a_py_or_template_edit() {
    crate::support::needs::require_python("flask");
    let port = free_port();
    let project = Project::new()
        .file("requirements.txt", "flask\n")
        .file("app.py", &flask_app("v1"))
        .file("templates/index.html", "one {{ version }} {{ prefix }}");
    // The frameworks come from the interpreter's own packages; the virtualenv is the
    // project's, and what runs the server.
    project.run_tool(
        "python3",
        &[
            "-m",
            "venv",
            "--system-site-packages",
            "--without-pip",
            ".venv",
        ],
    );
    let venv = project.path(".venv");
    let venv = venv.display();
    let mut session = project.start_with_env(&[], &[("PORT", &port.to_string())]);

    wait_for_body(&session, port, &format!("one v1 {venv}"));
    let line = first_status_line(&session);
    assert!(
        line.contains("Flask app (app.py)")
            && line.contains(".venv/bin/python -m flask run --debug --no-reload"),
        "the first status line says what was detected: {line}{}",
        session.context()
    );

    project.write("app.py", &flask_app("v2"));
    wait_for_body(&session, port, &format!("one v2 {venv}"));
    session.wait_for_stderr_count("restarted (pid", 1);

    project.write("templates/index.html", "two {{ version }} {{ prefix }}");
    wait_for_body(&session, port, &format!("two v2 {venv}"));
    // Debug mode reloads templates by itself; reload restarts the server too, which is what
    // makes the proxy reload the page.
    session.wait_for_stderr_count("restarted (pid", 2);

    // Flask stops on the stop signal, through the `exec` of its shell line.
    session.terminate();
    project.wait_no_processes();
}

// ---------------------------------------------------------------------------------------------
// FastAPI under uvicorn

fn fastapi_app(version: &str) -> String {
    format!(
        "from fastapi import FastAPI\n\
         from fastapi.responses import PlainTextResponse\n\n\
         app = FastAPI()\n\n\n\
         @app.get(\"/\", response_class=PlainTextResponse)\n\
         def index():\n    \
             return \"fastapi {version}\"\n"
    )
}

#[test]
fn a_fastapi_app_runs_under_uvicorn_and_restarts_on_an_edit() {
    crate::support::needs::require_python("fastapi");
    crate::support::needs::require_python("uvicorn");
    let port = free_port();
    let project = Project::new()
        .file(
            "pyproject.toml",
            "[project]\nname = \"api\"\ndependencies = [\"fastapi\", \"uvicorn\"]\n",
        )
        .file("main.py", &fastapi_app("v1"));
    let mut session = project.start_with_env(&[], &[("PORT", &port.to_string())]);

    wait_for_body(&session, port, "fastapi v1");
    let line = first_status_line(&session);
    assert!(
        line.contains("FastAPI app (main.py)")
            && line.contains("python3 -m uvicorn main:app --host 127.0.0.1"),
        "the first status line says what was detected: {line}{}",
        session.context()
    );
    assert!(
        !line.contains("--reload"),
        "uvicorn's own reloader stays off: {line}"
    );

    project.write("main.py", &fastapi_app("v2"));
    wait_for_body(&session, port, "fastapi v2");
    session.wait_for_stderr_count("restarted (pid", 1);

    session.terminate();
    project.wait_no_processes();
}

// ---------------------------------------------------------------------------------------------
// Django, behind the dev proxy

const MANAGE_PY: &str = "import os\nimport sys\n\n\
    os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"settings\")\n\
    from django.core.management import execute_from_command_line\n\n\
    execute_from_command_line(sys.argv)\n";

/// No database and no apps: `runserver` needs neither.
const SETTINGS_PY: &str = "SECRET_KEY = \"test only\"\nDEBUG = True\nALLOWED_HOSTS = []\n\
    ROOT_URLCONF = \"urls\"\nINSTALLED_APPS = []\nDATABASES = {}\nUSE_TZ = True\n";

fn django_urls(version: &str) -> String {
    format!(
        "from django.http import HttpResponse\n\
         from django.urls import path\n\n\
         urlpatterns = [\n    \
             path(\"\", lambda request: HttpResponse(\"django {version}\", \
         content_type=\"text/plain\")),\n]\n"
    )
}

fn django_project() -> Project {
    Project::new()
        .file("requirements.txt", "Django>=4\n")
        .file("manage.py", MANAGE_PY)
        .file("settings.py", SETTINGS_PY)
        .file("urls.py", &django_urls("v1"))
}

#[test]
fn a_django_project_behind_the_proxy_gets_the_app_port_and_restarts_on_an_edit() {
    crate::support::needs::require_python("django");
    let (proxy, app) = (free_port(), free_port());
    let project = django_project();
    let session = project.start(&[
        "--proxy",
        &proxy.to_string(),
        "--app-port",
        &app.to_string(),
    ]);

    session.wait_until("the proxy to answer `django v1`", || {
        proxied_get(proxy).filter(|body| body == "django v1")
    });
    let line = first_status_line(&session);
    assert!(
        line.contains("Django project (manage.py)")
            && line.contains("python3 manage.py runserver --noreload"),
        "the first status line says what was detected: {line}{}",
        session.context()
    );
    // The server listens where the proxy forwards: PORT became runserver's port.
    assert_eq!(http_get(app).as_deref(), Some("django v1"));

    project.write("urls.py", &django_urls("v2"));
    session.wait_until("the proxy to answer `django v2`", || {
        proxied_get(proxy).filter(|body| body == "django v2")
    });
    session.wait_for_stderr_count("restarted (pid", 1);
}

/// The Quickstart's line: `reload --proxy PORT` alone. runserver is given the port reload
/// chose, through PORT, and listens there: nothing to follow.
#[test]
fn a_django_project_behind_the_proxy_alone_listens_on_the_port_it_is_given() {
    crate::support::needs::require_python("django");
    let proxy = free_port();
    let project = django_project();
    let session = project.start(&["--proxy", &proxy.to_string()]);
    session.wait_until("the proxy to answer `django v1`", || {
        proxied_get(proxy).filter(|body| body == "django v1")
    });
    project.write("urls.py", &django_urls("v2"));
    session.wait_until("the proxy to answer `django v2`", || {
        proxied_get(proxy).filter(|body| body == "django v2")
    });
    let stderr = session.stderr();
    assert!(
        stderr.contains("(given as PORT") && !stderr.contains("not on PORT"),
        "runserver reads the chosen port from PORT{}",
        session.context()
    );
}

#[test]
fn reload_init_in_a_django_project_writes_the_server_down_and_a_bare_reload_runs_it() {
    crate::support::needs::require_python("django");
    let port = free_port();
    let project = django_project();
    let init = project.run_to_exit(&["init"]);
    assert_eq!(init.status.code(), Some(0), "{}", init.stderr);
    let toml = std::fs::read_to_string(project.path("reload.toml")).expect("reload.toml");
    assert!(
        toml.contains(
            "\ncmd = \"exec python3 manage.py runserver --noreload 127.0.0.1:${PORT:-8000}\"\n"
        ),
        "{toml}"
    );
    assert!(toml.contains("ext = [\"py\", \"html\""), "{toml}");
    assert!(!toml.contains("\ncmd = \"make"), "{toml}");

    let session = project.start_with_env(&[], &[("PORT", &port.to_string())]);
    wait_for_body(&session, port, "django v1");
    assert!(
        first_status_line(&session).contains("reload.toml"),
        "the file is what runs now{}",
        session.context()
    );
    project.write("urls.py", &django_urls("v2"));
    wait_for_body(&session, port, "django v2");
}

// ---------------------------------------------------------------------------------------------
// A Python project with nothing to serve

#[test]
fn a_python_project_without_a_server_is_told_a_python_line_not_make() {
    let project = Project::new()
        .file("requirements.txt", "requests\n")
        .file("worker.py", "print('hi')\n");
    project
        .run_to_exit(&[])
        .assert_fails_with(2, &["Python project", "reload -- python3 worker.py"]);
    let finished = project.run_to_exit(&[]);
    assert!(!finished.stderr.contains("make"), "{}", finished.stderr);
}
