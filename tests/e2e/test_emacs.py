"""Emacs 30 with eglot, driven by elisp in ``emacs --batch``, loading the snippet users copy
(clients/emacs/tandem-eglot.el; only its command and endpoint substituted: tests/e2e/snippets.py).

One session checks what a user sees: eglot connects to Tandem for a python-mode buffer (the snippet
also covers python-ts-mode); ``completion-at-point`` applies Tandem's item; the code actions are
listed; ``tandem.stats`` runs through ``workspace/executeCommand``; the fake model server got the
completion at the snippet's endpoint (the settings reached the server); the acceptance is counted
once though eglot does not run the item's command; and ``shutdown`` is answered (eglot's
``eglot-shutdown``), after which the server exits with 0.
"""

from __future__ import annotations

import json
import os
import subprocess

from tests.e2e.snippets import EMACS, machine_paths, snippet
from tests.editors import require_editor
from tests.fakes.model_server import FakeModelServer

DOC = "def add(a, b):\n    \n\nprint(add(1, 2))\n"

DRIVER = r"""
;;; -*- lexical-binding: t; -*-
(require 'eglot)
(require 'json)
(setq eglot-autoreconnect nil)
(load SNIPPET nil t)
(defvar tandem-result nil)
(defun tandem-note (key value) (setf (alist-get key tandem-result) value))
(defun tandem-write ()
  (with-temp-file OUT (insert (json-encode tandem-result))))
(defun tandem-wait (what pred secs)
  (let ((deadline (+ (float-time) secs)))
    (while (not (funcall pred))
      (when (> (float-time) deadline) (error "timed out waiting for %s" what))
      (accept-process-output nil 0.05))))
(defun tandem-stats (server)
  (jsonrpc-request server :workspace/executeCommand '(:command "tandem.stats" :arguments [])))

(condition-case err
    (let ((entry (car eglot-server-programs)))
      (tandem-note 'modes (mapcar #'symbol-name (car entry)))
      (find-file FILE)
      (tandem-note 'major_mode (symbol-name major-mode))
      (apply #'eglot (eglot--guess-contact))
      (tandem-wait "eglot to connect" (lambda () (eglot-current-server)) 60)
      (let ((server (eglot-current-server)))
        (tandem-note 'server_name (plist-get (eglot--server-info server) :name))
        ;; the model server found (its model listed), so the first completion has something to say
        (tandem-wait "the local model" (lambda () (let ((stats (tandem-stats server)))
                                                   (tandem-note 'model (plist-get stats :localModel))
                                                   (plist-get (plist-get stats :localModel) :model)))
                     60)
        ;; complete at the end of line 2, where the function body goes
        (goto-char (point-min)) (forward-line 1) (end-of-line)
        (let ((tries 0))
          (while (and (< tries 40) (not (string-match-p "return" (thing-at-point 'line t))))
            (setq tries (1+ tries))
            (completion-at-point)
            (accept-process-output nil 0.25)))
        (tandem-note 'line (thing-at-point 'line t))
        (eglot--signal-textDocument/didChange)  ; what eglot sends after a command (here: now)
        ;; the code actions for the whole buffer
        (let ((actions (jsonrpc-request
                        server :textDocument/codeAction
                        (list :textDocument (eglot--TextDocumentIdentifier)
                              :range (list :start (eglot--pos-to-lsp-position (point-min))
                                           :end (eglot--pos-to-lsp-position (point-max)))
                              :context '(:diagnostics [])))))
          (tandem-note 'actions (mapcar (lambda (a) (plist-get a :title)) actions)))
        (tandem-note 'stats (tandem-stats server))
        (let ((proc (jsonrpc--process server)))
          (tandem-note 'shutdown (condition-case e (progn (eglot-shutdown server nil 10) "answered")
                                   (error (format "%S" e))))
          (tandem-wait "the server to exit" (lambda () (not (process-live-p proc))) 20)
          (tandem-note 'exit_status (process-exit-status proc)))))
  (error (tandem-note 'error (format "%S" err))))
(tandem-write)
"""


def elisp_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is an elisp string (no control characters here)


def test_eglot_with_the_snippet(tmp_path):
    emacs = require_editor("emacs")
    fake = FakeModelServer(completion="return a + b\n").start()
    try:
        (tmp_path / "home").mkdir()
        project = tmp_path / "project"
        project.mkdir()
        source = project / "calc.py"
        source.write_text(DOC)
        init = tmp_path / "tandem-eglot.el"
        init.write_text(snippet(EMACS, endpoint=f"{fake.url}/v1"))
        out = tmp_path / "result.json"
        driver = tmp_path / "driver.el"
        driver.write_text(DRIVER.replace("SNIPPET", elisp_string(str(init)))
                          .replace("OUT", elisp_string(str(out))).replace("FILE", elisp_string(str(source))))
        env = {**os.environ, "HOME": str(tmp_path / "home"), "TANDEM_STATE_DIR": str(tmp_path / "state")}
        proc = subprocess.run([emacs, "--batch", "-Q", "-l", str(driver)], cwd=project, env=env,
                              capture_output=True, text=True, timeout=240)
        assert out.exists(), f"emacs wrote no result (exit {proc.returncode})\n{proc.stdout}\n{proc.stderr}"
        result = json.loads(out.read_text())
        log = f"\nemacs stderr:\n{proc.stderr[-4000:]}"
        assert "error" not in result, f"{result['error']}{log}"

        assert {"python-mode", "python-ts-mode"} <= set(result["modes"])  # the snippet covers both
        assert result["major_mode"] == "python-mode" and result["server_name"] == "tandem-lsp"
        assert result["line"] == "    return a + b\n", log  # the completion item, applied
        titles = result["actions"]
        assert "Tandem: Explain this code" in titles and any("Plan refactor" in t for t in titles), titles
        stats = result["stats"]  # tandem.stats, run through workspace/executeCommand
        assert stats["localModel"]["endpoint"] == f"{fake.url}/v1"  # the snippet's settings reached the server
        assert fake.generation_requests(), "the fake model server got no completion request"
        assert sum(stats["completions"]["accepted"].values()) == 1  # counted from the document, once
        assert result["shutdown"] == "answered" and result["exit_status"] == 0, log
    finally:
        fake.stop()


def test_the_snippet_is_the_one_readme_shows():
    text = EMACS.read_text()
    assert "with-eval-after-load 'eglot" in text and ":initializationOptions" in text
    assert "python-mode" in text and "python-ts-mode" in text
    assert machine_paths(text) == []
