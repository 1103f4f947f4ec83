import torch

from unetblur.models import UNetSpec, load_model, save_model

from test_prune import SMALL, _randomised


def _saved(tmp_path, name, spec=SMALL, seed=0, batches=0):
    model = _randomised(spec, seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.num_batches_tracked.fill_(batches)
    path = tmp_path / f"{name}.pt"
    save_model(model, path)
    return path


def test_average_is_the_mean_of_each_weight_and_keeps_the_first_files_counters(tmp_path, experiment_script):
    average = experiment_script("full_photo/average_weights.py")
    a, b = _saved(tmp_path, "a", seed=0, batches=3), _saved(tmp_path, "b", seed=1, batches=7)
    first, second = torch.load(a, weights_only=True)["state_dict"], torch.load(b, weights_only=True)["state_dict"]
    out = tmp_path / "mean.pt"

    assert average.main([str(a), str(b), "-o", str(out)]) == 0

    model, meta = load_model(out)
    mean = model.state_dict()
    for key, value in first.items():
        if value.is_floating_point():
            assert not torch.equal(value, second[key])
            torch.testing.assert_close(mean[key], (value + second[key]) / 2)
        else:
            assert torch.equal(mean[key], value) and not torch.equal(value, second[key])
    assert meta["averaged"] == [str(a), str(b)]


def test_average_of_a_model_with_itself_computes_the_same_output(tmp_path, experiment_script):
    average = experiment_script("full_photo/average_weights.py")
    a = _saved(tmp_path, "a")
    out = tmp_path / "same.pt"
    assert average.main([str(a), str(a), "-o", str(out)]) == 0
    x = torch.rand(1, 3, 2 * SMALL.stride, 2 * SMALL.stride)
    with torch.no_grad():
        torch.testing.assert_close(load_model(out)[0](x), load_model(a)[0](x))


def test_average_refuses_other_specs_one_file_and_an_existing_output(tmp_path, experiment_script, capsys):
    average = experiment_script("full_photo/average_weights.py")
    a = _saved(tmp_path, "a")
    other = _saved(tmp_path, "other", spec=UNetSpec.symmetric((8, 16, 24)))
    taken = tmp_path / "taken.pt"
    taken.write_bytes(b"keep")

    assert average.main([str(a), str(other), "-o", str(tmp_path / "x.pt")]) == 2
    assert "another architecture" in capsys.readouterr().err
    assert average.main([str(a), "-o", str(tmp_path / "y.pt")]) == 2
    assert "two or more" in capsys.readouterr().err
    assert average.main([str(a), str(a), "-o", str(taken)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert taken.read_bytes() == b"keep"
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()


def test_weights_mix_in_their_ratio_and_a_negative_weight_recovers_the_far_end(tmp_path, experiment_script):
    average = experiment_script("full_photo/average_weights.py")
    a, b = _saved(tmp_path, "a", seed=0), _saved(tmp_path, "b", seed=1)
    mix, mean, back = tmp_path / "mix.pt", tmp_path / "mean.pt", tmp_path / "back.pt"

    assert average.main([str(a), str(b), "-o", str(mix), "--weights", "0.25,0.75"]) == 0
    assert average.main([str(a), str(b), "-o", str(mean)]) == 0
    assert average.main([str(mean), str(a), "-o", str(back), "--weights", "2,-1"]) == 0

    first, second = torch.load(a, weights_only=True)["state_dict"], torch.load(b, weights_only=True)["state_dict"]
    mixed, recovered = load_model(mix)[0].state_dict(), load_model(back)[0].state_dict()
    for key, value in first.items():
        if value.is_floating_point():
            torch.testing.assert_close(mixed[key], 0.25 * value + 0.75 * second[key])
            torch.testing.assert_close(recovered[key], second[key])
    assert load_model(mix)[1]["weights"] == [0.25, 0.75]


def test_weights_refuses_a_wrong_count_a_sum_other_than_one_and_words(tmp_path, experiment_script, capsys):
    average = experiment_script("full_photo/average_weights.py")
    a = _saved(tmp_path, "a")
    for weights, message in (("1", "1 numbers for 2"), ("0.5,0.6", "sum to 1"), ("nan,nan", "finite"),
                             ("half,half", "comma-separated")):
        assert average.main([str(a), str(a), "-o", str(tmp_path / "x.pt"), "--weights", weights]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
