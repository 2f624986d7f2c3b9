"""config.settings.load_settings: defaults, the "Running" table, one-line errors."""

from __future__ import annotations

import ipaddress

import pytest

from config.settings import Secret, SettingsError, load_settings

SECRET = "k" * 32


def load(**env: str):
    return load_settings(env, dotenv_path=None)


def refusal(**env: str) -> str:
    with pytest.raises(SettingsError) as caught:
        load(**env)
    return str(caught.value)


def test_bare_environment_gives_documented_defaults():
    s = load()
    assert s.port == 3000
    assert s.host == "127.0.0.1"
    assert s.trusted_proxies == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    assert s.worker_id is None
    assert s.database_url == "sqlite+aiosqlite:///supportchat.db"
    assert s.redis_url is None
    assert s.broker_url is None
    assert s.jwt_secret is None
    assert s.jwt_ttl_seconds == 28800
    assert s.allowed_origins == ()
    assert s.cookie_secure is False
    assert (s.msg_rate, s.msg_burst) == (20, 40)
    assert s.password_min_length == 12
    assert s.msg_max_chars == 4000
    assert s.max_packet_chars == 65536
    assert s.login_failures_per_minute == 10


def test_empty_value_means_default():
    assert load(PORT="", JWT_TTL="  ").port == 3000


def test_numbers_are_parsed():
    s = load(
        PORT="8080",
        MSG_RATE="2.5",
        MSG_BURST="7",
        PASSWORD_MIN_LENGTH="16",
        MSG_MAX_CHARS="500",
        MAX_PACKET_CHARS="2048",
        LOGIN_FAILURES_PER_MINUTE="3",
    )
    assert (s.port, s.msg_rate, s.msg_burst) == (8080, 2.5, 7)
    assert (s.password_min_length, s.msg_max_chars) == (16, 500)
    assert (s.max_packet_chars, s.login_failures_per_minute) == (2048, 3)


def test_msg_rate_zero_is_accepted_to_turn_the_limit_off():
    assert load(MSG_RATE="0").msg_rate == 0


def test_host_and_worker_id_are_taken_as_given():
    s = load(HOST="192.0.2.10", WORKER_ID="w1")
    assert (s.host, s.worker_id) == ("192.0.2.10", "w1")


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("8h", 28800), ("30m", 1800), ("45s", 45), ("1d", 86400), ("3600", 3600), ("1.5h", 5400)],
)
def test_jwt_ttl_durations(raw, seconds):
    assert load(JWT_TTL=raw).jwt_ttl_seconds == seconds


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("yes", True), ("ON", True), ("false", False), ("0", False)],
)
def test_cookie_secure_booleans(raw, expected):
    assert load(COOKIE_SECURE=raw).cookie_secure is expected


def test_trusted_proxies_are_a_comma_list_of_networks():
    s = load(TRUSTED_PROXIES="10.0.0.0/8, 192.168.1.7 ,fd00::/8")
    assert s.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("fd00::/8"),
    )


def test_allowed_origins_are_normalised():
    s = load(ALLOWED_ORIGINS="HTTPS://Example.COM/, http://chat.test:8080,")
    assert s.allowed_origins == ("https://example.com", "http://chat.test:8080")


def test_redis_and_broker_urls_are_accepted_with_a_secret():
    s = load(REDIS_URL="rediss://cache:6380/0", BROKER_URL="amqp://guest@mq//", JWT_SECRET=SECRET)
    assert (s.redis_url, s.broker_url) == ("rediss://cache:6380/0", "amqp://guest@mq//")
    assert load(REDIS_URL="redis+sentinel://s:26379", JWT_SECRET=SECRET).redis_url


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "0"),
        ("PORT", "65536"),
        ("HOST", "bad host"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip"),
        ("WORKER_ID", "w-1"),
        ("DATABASE_URL", "oracle://u@h/db"),
        ("DATABASE_URL", "supportchat.db"),
        ("REDIS_URL", "http://cache:6379"),
        ("BROKER_URL", "kafka://mq"),
        ("JWT_TTL", "forever"),
        ("JWT_TTL", "0"),
        ("JWT_TTL", "-1h"),
        ("ALLOWED_ORIGINS", "example.com"),
        ("ALLOWED_ORIGINS", "https://example.com/path"),
        ("COOKIE_SECURE", "maybe"),
        ("MSG_RATE", "-1"),
        ("MSG_RATE", "nan"),
        ("MSG_BURST", "0"),
        ("MSG_BURST", "1.5"),
        ("PASSWORD_MIN_LENGTH", "x"),
        ("MSG_MAX_CHARS", "0"),
        ("MAX_PACKET_CHARS", "ten"),
        ("LOGIN_FAILURES_PER_MINUTE", "-3"),
    ],
)
def test_malformed_value_is_one_line_naming_the_variable(variable, value):
    env = {variable: value}
    if variable == "REDIS_URL":
        env["JWT_SECRET"] = SECRET
    message = refusal(**env)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message


def test_multiline_value_still_gives_one_line():
    message = refusal(PORT="1\n2")
    assert message.startswith("PORT: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    "env",
    [
        {"REDIS_URL": "redis://cache:6379"},
        {"DATABASE_URL": "postgresql://u:p@db/chat"},
        {"DATABASE_URL": "mysql://u:p@db/chat"},
    ],
)
def test_jwt_secret_is_required_beyond_one_sqlite_process(env):
    message = refusal(**env)
    assert message.startswith("JWT_SECRET: ")
    assert "\n" not in message


def test_short_jwt_secret_is_refused_without_echoing_it():
    message = refusal(JWT_SECRET="short-secret-value", REDIS_URL="redis://cache")
    assert message.startswith("JWT_SECRET: ")
    assert "short-secret-value" not in message


def test_jwt_secret_of_32_bytes_is_accepted():
    assert load(JWT_SECRET=SECRET, REDIS_URL="redis://c").jwt_secret == Secret(SECRET)
    # 11 three-byte characters are 33 bytes though only 11 characters.
    assert load(JWT_SECRET="€" * 11).jwt_secret == Secret("€" * 11)


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [
        ("sqlite:///data/chat.db", "sqlite+aiosqlite:///data/chat.db"),
        ("sqlite:////var/lib/chat.db", "sqlite+aiosqlite:////var/lib/chat.db"),
        ("mysql://u:p@db:3306/chat", "mysql+aiomysql://u:p@db:3306/chat"),
        ("mariadb://u:p@db/chat", "mysql+aiomysql://u:p@db/chat"),
        ("postgresql://u:p@db/chat", "postgresql+asyncpg://u:p@db/chat"),
        ("postgres://u:p@db:5432/chat", "postgresql+asyncpg://u:p@db:5432/chat"),
    ],
)
def test_database_url_schemes_map_to_async_drivers(raw, mapped):
    assert load(DATABASE_URL=raw, JWT_SECRET=SECRET).database_url == mapped


@pytest.mark.parametrize(
    "raw", ["sqlite://chat.db", "mysql://u:p@db", "postgresql:///chat", "mongodb://db/chat"]
)
def test_database_url_without_path_host_or_known_scheme_is_refused(raw):
    assert refusal(DATABASE_URL=raw, JWT_SECRET=SECRET).startswith("DATABASE_URL: ")


def test_database_url_error_does_not_print_the_password():
    assert "hunter2" not in refusal(DATABASE_URL="mysql://u:hunter2@db", JWT_SECRET=SECRET)


def test_dotenv_file_is_read(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=4100\nJWT_TTL=30m\nCOOKIE_SECURE=true\n")
    s = load_settings({}, dotenv_path=dotenv)
    assert (s.port, s.jwt_ttl_seconds, s.cookie_secure) == (4100, 1800, True)


def test_real_environment_wins_over_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=4100\nHOST=192.0.2.10\n")
    s = load_settings({"PORT": "4200"}, dotenv_path=dotenv)
    assert (s.port, s.host) == (4200, "192.0.2.10")


def test_missing_dotenv_file_is_not_an_error(tmp_path):
    assert load_settings({}, dotenv_path=tmp_path / "absent.env").port == 3000


def test_malformed_value_in_dotenv_names_the_variable(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("MSG_BURST=lots\n")
    with pytest.raises(SettingsError, match=r"^MSG_BURST: "):
        load_settings({}, dotenv_path=dotenv)


def test_jwt_secret_never_shows_in_settings_text():
    value = "s3cr3t-" + "x" * 40
    s = load(JWT_SECRET=value)
    assert s.jwt_secret is not None
    assert s.jwt_secret.reveal() == value
    for shown in (repr(s), str(s), f"{s}", f"{s!r}", repr(s.jwt_secret), f"{s.jwt_secret}"):
        assert value not in shown
        assert "s3cr3t" not in shown


def test_widget_is_off_by_default():
    s = load()
    assert s.widget is False
    assert s.widget_origins == ()
    assert s.widget_secret is None
    assert s.widget_identity == "optional"
    assert s.visitor_ttl_seconds == 30 * 86400
    assert s.visitors_per_hour == 20


def test_widget_settings_are_parsed():
    s = load(
        WIDGET_ORIGINS="https://Shop.example.com, http://localhost:8000",
        WIDGET_SECRET="w" * 32,
        WIDGET_IDENTITY="required",
        VISITOR_TTL="2d",
        VISITORS_PER_HOUR="0",
    )
    assert s.widget is True
    assert s.widget_origins == ("https://shop.example.com", "http://localhost:8000")
    assert s.widget_secret == Secret("w" * 32)
    assert s.widget_identity == "required"
    assert s.visitor_ttl_seconds == 2 * 86400
    assert s.visitors_per_hour == 0


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"WIDGET_ORIGINS": "shop.example.com"}, "WIDGET_ORIGINS"),
        ({"WIDGET_IDENTITY": "always"}, "WIDGET_IDENTITY"),
        ({"WIDGET_IDENTITY": "required"}, "WIDGET_IDENTITY"),  # without a secret to check
        ({"VISITOR_TTL": "0"}, "VISITOR_TTL"),
        ({"VISITORS_PER_HOUR": "-1"}, "VISITORS_PER_HOUR"),
    ],
)
def test_malformed_widget_settings_name_the_variable(env, variable):
    message = refusal(**env)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message


def test_short_widget_secret_is_refused_without_echoing_it():
    message = refusal(WIDGET_SECRET="a-short-widget-key")
    assert message.startswith("WIDGET_SECRET: ")
    assert "a-short-widget-key" not in message


# -- attachments ---------------------------------------------------------------------------


def test_attachment_settings_default_to_a_directory_and_ten_mebibytes():
    s = load()
    assert (s.storage.kind, s.storage.location, s.storage.prefix) == ("file", "uploads", "")
    assert s.upload_max_bytes == 10 * 1024 * 1024
    assert s.upload_types == (
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
    )
    assert s.uploads_per_minute == 30
    assert (s.s3_endpoint_url, s.aws_access_key_id, s.aws_secret_access_key) == (None,) * 3
    assert s.aws_region is None


@pytest.mark.parametrize(
    ("raw", "kind", "location", "prefix"),
    [
        ("file:uploads", "file", "uploads", ""),
        ("file:/srv/chat files", "file", "/srv/chat files", ""),
        ("file:///srv/uploads", "file", "/srv/uploads", ""),
        ("s3://chat-files", "s3", "chat-files", ""),
        ("s3://chat-files/", "s3", "chat-files", ""),
        ("s3://chat.files/prod/attachments/", "s3", "chat.files", "prod/attachments/"),
    ],
)
def test_storage_url_names_a_directory_or_a_bucket(raw, kind, location, prefix):
    storage = load(STORAGE_URL=raw).storage
    assert (storage.kind, storage.location, storage.prefix) == (kind, location, prefix)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", 1),
        ("10485760", 10485760),
        ("10MiB", 10 * 1024 * 1024),
        ("10m", 10 * 1024 * 1024),
        ("20MB", 20_000_000),
        ("512 KiB", 512 * 1024),
        ("1GiB", 1024**3),
    ],
)
def test_upload_max_bytes_takes_a_size_with_or_without_a_unit(raw, expected):
    assert load(UPLOAD_MAX_BYTES=raw).upload_max_bytes == expected


def test_upload_types_and_s3_settings_are_parsed():
    s = load(
        UPLOAD_TYPES=" Image/PNG, application/zip ,image/png",
        UPLOADS_PER_MINUTE="0",
        STORAGE_URL="s3://bucket/chat",
        S3_ENDPOINT_URL="http://127.0.0.1:9000",
        AWS_ACCESS_KEY_ID="minioadmin",
        AWS_SECRET_ACCESS_KEY="minio-secret",
        AWS_REGION="eu-west-1",
    )
    assert s.upload_types == ("image/png", "application/zip")
    assert s.uploads_per_minute == 0
    assert (s.storage.kind, s.storage.location, s.storage.prefix) == ("s3", "bucket", "chat/")
    assert s.s3_endpoint_url == "http://127.0.0.1:9000"
    assert s.aws_access_key_id == "minioadmin"
    assert s.aws_secret_access_key == Secret("minio-secret")
    assert "minio-secret" not in repr(s)
    assert s.aws_region == "eu-west-1"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"STORAGE_URL": "uploads"}, "STORAGE_URL"),
        ({"STORAGE_URL": "file:"}, "STORAGE_URL"),
        ({"STORAGE_URL": "s3://"}, "STORAGE_URL"),
        ({"STORAGE_URL": "s3://Bad_Bucket/x"}, "STORAGE_URL"),
        ({"STORAGE_URL": "s3://bucket/a//b"}, "STORAGE_URL"),
        ({"STORAGE_URL": "gs://bucket/x"}, "STORAGE_URL"),
        ({"UPLOAD_MAX_BYTES": "0"}, "UPLOAD_MAX_BYTES"),
        ({"UPLOAD_MAX_BYTES": "ten megs"}, "UPLOAD_MAX_BYTES"),
        ({"UPLOAD_MAX_BYTES": "5GiB"}, "UPLOAD_MAX_BYTES"),
        ({"UPLOAD_TYPES": ","}, "UPLOAD_TYPES"),
        ({"UPLOAD_TYPES": "png"}, "UPLOAD_TYPES"),
        ({"UPLOAD_TYPES": "image/png,text/html"}, "UPLOAD_TYPES"),  # not told by its bytes
        ({"UPLOADS_PER_MINUTE": "-1"}, "UPLOADS_PER_MINUTE"),
        ({"S3_ENDPOINT_URL": "minio:9000"}, "S3_ENDPOINT_URL"),
        ({"AWS_ACCESS_KEY_ID": "has space"}, "AWS_ACCESS_KEY_ID"),
        ({"AWS_REGION": "EU West"}, "AWS_REGION"),
    ],
)
def test_malformed_attachment_settings_name_the_variable(env, variable):
    message = refusal(**env)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message


def test_a_malformed_s3_secret_is_refused_without_echoing_it():
    message = refusal(AWS_SECRET_ACCESS_KEY="hunter2 hunter3")
    assert message.startswith("AWS_SECRET_ACCESS_KEY: ")
    assert "hunter" not in message and "(hidden)" in message
