"""One eval, a teacher on one endpoint and a student on another, each with its own key variable;
neither key reaches the workspace file, an export, a job's log or anything printed."""

from __future__ import annotations

import json

from tests.fake_openai import FakeOpenAI

TEACHER_KEY = "sk-teacher-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
STUDENT_KEY = "student-local-key-0123456789abcdefXYZ"
WHO = ["alice", "bob", "carol", "dave", "erin", "frank"]
QUESTIONS = [("where is my payslip for May", "get_payslip"), ("book a holiday next week", "book_holiday"),
             ("what is the policy on expenses", "get_policy"), ("I want to escalate this", "escalate")]


def test_eval_compares_a_teacher_and_a_student_on_two_endpoints_and_no_key_is_written(
        store, db_path, tmp_path, run_cli, monkeypatch):
    with FakeOpenAI(api_key=TEACHER_KEY) as teacher, FakeOpenAI(api_key=STUDENT_KEY).use_profile("vllm") as student:
        monkeypatch.setenv("TEACHER_KEY", TEACHER_KEY)
        monkeypatch.setenv("STUDENT_KEY", STUDENT_KEY)
        student.answer = lambda messages, enum: "escalate"  # a poor student: right one time in four
        teacher.fail_next(1, 500)  # one retry on the teacher's side, and its message
        data = tmp_path / "test.csv"
        data.write_text("text,label\n" + "".join(f"{q} {i},{a}\n" for i in range(5) for q, a in QUESTIONS))
        pool = tmp_path / "pool.csv"  # unlabelled questions: the teacher labels them for the export
        pool.write_text("text\n" + "".join(f"please help {who}: {q}\n" for who in WHO for q, _ in QUESTIONS))
        outputs = []

        def cli(*args):
            r = run_cli(*args, "--db", db_path)
            outputs.append(r.out + r.err)
            assert r.code == 0, r
            return r

        cli("import", str(data), "--split", "test")
        cli("import", str(pool), "--split", "train")
        cli("endpoints", "add", "openai-teacher", "--base-url", teacher.base_url, "--api-key-env", "TEACHER_KEY")
        cli("endpoints", "add", "vllm", "--base-url", student.base_url, "--api-key-env", "STUDENT_KEY")
        cli("label", "--model", "openai-teacher/gpt-4.1")
        cli("export", "--out", str(tmp_path / "export"), "--teacher", "openai-teacher/gpt-4.1")
        r = cli("eval", "--models", "openai-teacher/gpt-4.1,vllm/Qwen/Qwen3-0.6B-routelab", "--split", "test",
                "--json")
        doc = json.loads(r.out)
        cli("eval", "--show", "--split", "test")
        cli("jobs", "list")
        for job in store.jobs():
            cli("jobs", "show", str(job.id))
        cli("endpoints", "list")
        cli("endpoints", "list", "--json")

        accuracy = {m["model"]: m["accuracy"] for m in doc["models"]}
        assert accuracy == {"openai-teacher/gpt-4.1": 1.0, "vllm/Qwen/Qwen3-0.6B-routelab": 0.25}
        assert doc["base"] == "openai-teacher/gpt-4.1" and not doc["errors"]
        # each server saw only its own model and its own key
        assert {b["model"] for b in teacher.chat_requests()} == {"gpt-4.1"}
        assert {b["model"] for b in student.chat_requests()} == {"Qwen/Qwen3-0.6B-routelab"}
        assert STUDENT_KEY not in json.dumps(teacher.requests) and TEACHER_KEY not in json.dumps(student.requests)
        store.close()  # everything on disk: the file, its WAL, every export
        written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".csv"]
        assert any(p.name.startswith("ws.db") for p in written) and any("export" in p.parts for p in written)
        for key in (TEACHER_KEY, STUDENT_KEY):
            for path in written:
                assert key.encode() not in path.read_bytes(), f"{key[:10]}... written to {path.name}"
            assert all(key not in out for out in outputs)
        # the workspace has the variables' names, which is what it needs
        assert b"TEACHER_KEY" in db_path.read_bytes() and b"STUDENT_KEY" in db_path.read_bytes()
