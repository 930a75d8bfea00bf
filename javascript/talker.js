// Stable Diffusion WebUI loads every javascript/*.js of an extension into its page.
// "Send to Talker" (scripts/talker_tab.py) ends by calling switch_to_talker, as the WebUI's own
// Send buttons call switch_to_img2img: open the Talker tab.
function switch_to_talker() {
    const tab = gradioApp().querySelector('#tabs').querySelectorAll('button');
    const button = Array.from(tab).find((b) => b.textContent.trim() === 'Talker');
    if (button) button.click();
    return Array.from(arguments);
}
