// Stable Diffusion WebUI loads every javascript/*.js of an extension into its page.

// "Send to Talker" (scripts/talker_tab.py) ends by calling switch_to_talker, as the WebUI's own
// Send buttons call switch_to_img2img: open the Talker tab. The picture it sends has no file name.
function switch_to_talker() {
    talkerPortraitName = '';
    const tab = gradioApp().querySelector('#tabs').querySelectorAll('button');
    const button = Array.from(tab).find((b) => b.textContent.trim() === 'Talker');
    if (button) button.click();
    return Array.from(arguments);
}

// The file name of the picture dropped or picked in the Talker tab's portrait input. Gradio 3 (the
// WebUI 1.10's) sends the server only the picture's pixels; the tab asks for the name through
// talker_portrait_name (talker.webui.compat.PORTRAIT_NAME_JS) when the portrait changes, to name
// the clip <portrait>_<voice>.mp4. Each name is given once: a picture pasted or sent later has none.
let talkerPortraitName = '';

function talker_portrait_name() {
    const name = talkerPortraitName;
    talkerPortraitName = '';
    return name;
}

function talkerRememberName(files) {
    if (files && files.length) talkerPortraitName = files[0].name;
}

document.addEventListener('change', (event) => {
    if (event.target.matches && event.target.matches('#talker-image input[type=file]')) {
        talkerRememberName(event.target.files);
    }
}, true);
document.addEventListener('drop', (event) => {
    if (event.target.closest && event.target.closest('#talker-image')) {
        talkerRememberName(event.dataTransfer && event.dataTransfer.files);
    }
}, true);
