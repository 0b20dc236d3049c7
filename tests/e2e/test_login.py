import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD, OfficialAccountFactory, supervisor

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_supervisor_logs_in_and_out_in_the_browser(page, live_server, login, django_user_model):
    user = django_user_model.objects.create_user("mei", password="correct horse battery")
    login(user, "correct horse battery")
    assert page.locator(".username").inner_text().startswith("mei")
    page.click("form[action='/logout/'] button")
    page.wait_for_url(f"{live_server.url}/login/")


def test_a_wrong_password_shows_an_error_and_stays_on_login(page, live_server, django_user_model):
    django_user_model.objects.create_user("mei", password="correct horse battery")
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "mei")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert page.url.startswith(f"{live_server.url}/login/")
    assert page.locator("[role=alert]").is_visible()


def test_repeated_wrong_passwords_lock_the_login_and_the_page_says_for_how_long(page, live_server, django_user_model, settings):
    django_user_model.objects.create_user("mei", password="correct horse battery")
    page.context.add_cookies([{"name": "django_language", "value": "en", "url": live_server.url}])
    page.goto(f"{live_server.url}/login/")
    for password in ["wrong"] * settings.AXES_FAILURE_LIMIT + ["correct horse battery"]:
        page.fill("input[name=username]", "mei")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state()

    assert page.url.startswith(f"{live_server.url}/login/")
    alert = page.locator("[role=alert]")
    assert "Try again in 15 minutes" in alert.inner_text()
    assert page.locator(".username").count() == 0


def test_a_page_left_open_after_the_session_ended_goes_to_the_login_page_and_back(page, live_server, login, settings):
    login(supervisor(OfficialAccountFactory()), PASSWORD)
    page.goto(f"{live_server.url}/queue/")
    expect(page.locator("#queue-waiting")).to_be_visible()

    page.context.clear_cookies(name=settings.SESSION_COOKIE_NAME)  # the session ends
    # The lists poll every 5 s: the first poll after that takes the whole page to the
    # login page, rather than swapping the login form into a list.
    page.wait_for_url(f"{live_server.url}/login/?next=/queue/", timeout=20_000)
    expect(page.locator("#queue-waiting")).to_have_count(0)
    expect(page.locator("input[name=username]")).to_have_count(1)

    page.fill("input[name=username]", "supervisor")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/queue/")
