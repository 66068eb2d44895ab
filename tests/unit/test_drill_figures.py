"""The drills' time to detect and time to recover, from /readyz samples."""

from __future__ import annotations

from loadtest.drills.verdicts import detection


def test_detect_and_recover_are_measured_from_the_faults_start_and_end() -> None:
    watch = [(t / 4, not 12 <= t / 4 < 21.5) for t in range(0, 120)]  # down 12 s .. 21.5 s
    assert detection(watch, (10.0, 20.0)) == {
        "readyz_detected_after_s": 2.0,
        "readyz_recovered_after_s": 1.5,
    }


def test_a_fault_readyz_never_showed_has_no_figures() -> None:
    watch = [(t / 4, True) for t in range(0, 120)]
    assert detection(watch, (10.0, 20.0)) == {
        "readyz_detected_after_s": None,
        "readyz_recovered_after_s": None,
    }


def test_recovery_counts_from_detection_when_that_came_after_the_end() -> None:
    watch = [(t / 4, not 21 <= t / 4 < 23) for t in range(0, 120)]
    assert detection(watch, (10.0, 20.0)) == {
        "readyz_detected_after_s": 11.0,
        "readyz_recovered_after_s": 3.0,
    }
