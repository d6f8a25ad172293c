;;; tandem-eglot.el --- Tandem in Emacs with eglot  -*- lexical-binding: t; -*-

;; Put this in your init file (Emacs 29+, where eglot is built in); then M-x eglot in a Python
;; buffer, or add `eglot-ensure' to `python-mode-hook' and `python-ts-mode-hook'.
;; `tandem-lsp' must be on your PATH (`tandem-lsp doctor' checks the set-up).
;; eglot runs one server per buffer: this makes Tandem the server for Python buffers.

(with-eval-after-load 'eglot
  (add-to-list 'eglot-server-programs
               '((python-mode python-ts-mode)
                 . ("tandem-lsp"
                    ;; The `tandem' settings tree (see the README); every key is optional.
                    ;; :backend "auto" (the first local server that answers, else the embedded
                    ;; model), "openai" (LM Studio, llama-server), "ollama", "llamacpp" or
                    ;; "embedded"; :endpoint the server's URL (Ollama: http://127.0.0.1:11434).
                    :initializationOptions
                    (:local (:backend "openai" :endpoint "http://127.0.0.1:1234/v1")
                     :cloud (:dailyBudgetUsd 2.0))))))
