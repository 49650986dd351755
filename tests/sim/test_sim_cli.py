import imageio.v2 as imageio
import pytest

from sim.cli import main


@pytest.mark.timeout(120)
def test_snapshot_writes_camera_pngs_and_expert_mp4(tmp_path, capsys):
    assert main(["snapshot", "--task", "reach_jump", "--out", str(tmp_path), "--size", "64", "--mp4",
                 "--max-seconds", "0.5"]) == 0
    front = imageio.imread(tmp_path / "reach_jump_0_front.png")
    assert front.shape == (64, 64, 3) and front.std() > 5
    assert (tmp_path / "reach_jump_0_wrist.png").is_file()
    reader = imageio.get_reader(tmp_path / "reach_jump_0_expert.mp4")
    frame = reader.get_data(0)
    assert frame.shape == (64, 128, 3)
    reader.close()
    assert "wrote" in capsys.readouterr().out
